use std::process::Command;

fn run(user: &str, branch: String) -> std::io::Result<()> {
    // ruleid: rust-command-shell-built
    Command::new("sh").arg("-c").arg(format!("grep {} /etc/passwd", user)).output()?;
    // ruleid: rust-command-shell-built
    std::process::Command::new("/bin/bash").args(["-c", &branch]).status()?;
    // ok: rust-command-shell-built
    Command::new("sh").arg("-c").arg("ls -l").output()?;
    // ok: rust-command-shell-built
    Command::new("git").arg("log").arg(&branch).output()?;
    Ok(())
}
