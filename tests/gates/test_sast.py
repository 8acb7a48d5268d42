"""The sast gate: KARMA's semgrep rules, their fixtures, and the baseline."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from karma.config import KarmaConfig
from karma.gates import GateContext, load_suite, run_suite
from karma.gates.suite import semgrep_rules_dir
from tests.gates.conftest import git, make_repo, write

RULES = {
    "eval-exec-input",
    "subprocess-shell-true",
    "yaml-unsafe-load",
    "pickle-loads",
    "sql-string-format",
    "tls-verify-off",
    "tempfile-mktemp",
    "weak-password-hash",
    "assert-access-check",
    "debug-mode-on",
    "jinja2-autoescape-off",
    "path-traversal-open",
}
JS_RULES = {
    "js-eval-input",
    "js-child-process-built-command",
    "js-inner-html-input",
    "js-tls-verify-off",
    "js-weak-hash",
    "js-path-traversal",
}
GO_RULES = {"go-exec-shell-built", "go-tls-insecure-skip-verify", "go-sql-string-format"}
RUST_RULES = {"rust-command-shell-built", "rust-tls-verify-off", "rust-sql-string-format"}
FIXTURES = {"python": (".py",), "javascript": (".js", ".jsx", ".ts", ".tsx"), "go": (".go",),
            "rust": (".rs",)}  # fmt: skip


def test_every_rule_has_a_passing_fixture() -> None:
    rules = semgrep_rules_dir()
    by_language = {d.name: {p.stem for p in d.glob("*.yaml")} for d in rules.iterdir()}
    assert by_language == {
        "python": RULES, "javascript": JS_RULES, "go": GO_RULES, "rust": RUST_RULES
    }  # fmt: skip
    for language, names in by_language.items():
        for name in names:
            fixtures = [p for p in (rules / language).glob(f"{name}.*") if p.suffix != ".yaml"]
            assert fixtures, f"{name} has no fixture"
            assert all(p.suffix in FIXTURES[language] for p in fixtures), fixtures
    every = len(RULES | JS_RULES | GO_RULES | RUST_RULES)
    semgrep = Path(sys.executable).parent / "semgrep"
    proc = subprocess.run(
        [str(semgrep), "--test", "--metrics=off", "--disable-version-check", str(rules)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert f"{every}/{every}: ✓ All tests passed" in proc.stdout + proc.stderr


def test_preexisting_finding_does_not_block(tmp_path: Path) -> None:
    old = "import pickle\n\n\ndef load(b):\n    return pickle.loads(b)\n"
    repo = make_repo(tmp_path / "r", {"store.py": old})
    write(repo, {"store.py": "# a comment moves the line\n" + old})
    ctx = GateContext(repo=repo, base=git(repo, "rev-parse", "HEAD"), config=KarmaConfig())
    result = run_suite(ctx, load_suite().only(("sast",)))
    gate = result.result("sast")
    assert gate is not None and gate.status == "warning", gate
    (finding,) = gate.findings
    assert finding.rule == "karma.pickle-loads" and finding.line == 6 and not finding.new
    assert result.status == "passed"
    # A second, new occurrence blocks.
    write(repo, {"store.py": old + "\n\ndef again(b):\n    return pickle.loads(b)\n"})
    gate = run_suite(ctx, load_suite().only(("sast",))).result("sast")
    assert gate is not None and gate.status == "failed"
    assert [f.new for f in gate.findings] == [False, True]


def test_semgrep_missing_is_an_error_that_blocks(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"a.py": "x = 1\n"})
    write(repo, {"a.py": "x = eval(input())\n"})
    ctx = GateContext(repo=repo, base=git(repo, "rev-parse", "HEAD"), config=KarmaConfig())
    suite = load_suite(overrides={"sast": {"semgrep": str(tmp_path / "no-such-semgrep")}}).only(
        ("sast",)
    )
    result = run_suite(ctx, suite)
    gate = result.result("sast")
    assert gate is not None and gate.status == "error" and "not found" in gate.summary
    assert result.status == "failed"
    failing = tmp_path / "semgrep-broken"
    failing.write_text("#!/bin/sh\necho 'rules are broken' >&2\nexit 7\n")
    failing.chmod(0o755)
    gate = run_suite(
        ctx, load_suite(overrides={"sast": {"semgrep": str(failing)}}).only(("sast",))
    ).result("sast")
    assert gate is not None and gate.status == "error" and "exit 7" in gate.summary
    warn_only = load_suite(
        overrides={"sast": {"semgrep": "/nonexistent/semgrep", "blocking": False}}
    )
    assert run_suite(ctx, warn_only.only(("sast",))).status == "passed"


def test_no_python_files_is_skipped(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"README.md": "# x\n"})
    write(repo, {"README.md": "# y\n", "notes.txt": "eval(input())\n"})
    ctx = GateContext(repo=repo, base=git(repo, "rev-parse", "HEAD"), config=KarmaConfig())
    gate = run_suite(ctx, load_suite().only(("sast",))).result("sast")
    assert (
        gate is not None
        and gate.status == "skipped"
        and "no changed Python, JavaScript" in gate.summary
    )


def test_native_and_python_cli_agree_on_the_fixtures(tmp_path: Path) -> None:
    rules = semgrep_rules_dir()
    fixtures = {p.name: p.read_text() for p in rules.rglob("*.*") if p.suffix != ".yaml"}
    repo = make_repo(tmp_path / "r", {"README.md": "# x\n"})
    write(repo, fixtures)
    ctx = GateContext(repo=repo, base=git(repo, "rev-parse", "HEAD"), config=KarmaConfig())
    found = []
    for native in (True, False):
        suite = load_suite(overrides={"sast": {"native": native}}).only(("sast",))
        gate = run_suite(ctx, suite).result("sast")
        assert gate is not None and gate.status == "failed"
        found.append(sorted((f.rule, f.path, f.line) for f in gate.findings))
    assert found[0] == found[1]
    assert {rule for rule, _, _ in found[0]} == {
        f"karma.{name}" for name in RULES | JS_RULES | GO_RULES | RUST_RULES
    }


NODE_API = """const express = require("express");
const { execFile } = require("child_process");
const app = express();

app.get("/files", (req, res) => {
  execFile("ls", ["-l", "/srv/files"], (err, out) => res.send(out));
});

module.exports = app;
"""


def test_a_planted_child_process_exec_of_request_input_fails_a_node_project(
    tmp_path: Path,
) -> None:
    files = {"package.json": '{"name": "api", "scripts": {"test": "node --test"}}\n',
             "src/app.js": NODE_API}  # fmt: skip
    repo = make_repo(tmp_path / "r", files)
    planted = NODE_API.replace(
        'const { execFile } = require("child_process");',
        'const { exec, execFile } = require("child_process");',
    ).replace(
        "module.exports",
        'app.get("/grep", (req, res) => {\n'
        '  exec("grep -r " + req.query.q + " /srv/files", (err, out) => res.send(out));\n'
        "});\n\nmodule.exports",
    )
    write(repo, {"src/app.js": planted})
    ctx = GateContext(repo=repo, base=git(repo, "rev-parse", "HEAD"), config=KarmaConfig())
    gate = run_suite(ctx, load_suite().only(("sast",))).result("sast")
    assert gate is not None and gate.status == "failed", gate
    (finding,) = gate.findings
    assert finding.rule == "karma.js-child-process-built-command" and finding.new
    assert (finding.path, finding.line) == ("src/app.js", 10)


RUST_MAIN = """use std::process::Command;

fn main() {
    let name = std::env::args().nth(1).unwrap_or_default();
    Command::new("id").arg(&name).status().unwrap();
}
"""


def test_a_planted_shell_command_of_input_fails_a_rust_project(tmp_path: Path) -> None:
    files = {"Cargo.toml": '[package]\nname = "who"\nversion = "0.1.0"\nedition = "2021"\n',
             "src/main.rs": RUST_MAIN}  # fmt: skip
    repo = make_repo(tmp_path / "r", files)
    planted = RUST_MAIN.replace(
        '    Command::new("id").arg(&name).status().unwrap();',
        '    Command::new("id").arg(&name).status().unwrap();\n'
        '    Command::new("sh").arg("-c").arg(format!("finger {}", name)).status().unwrap();',
    )
    write(repo, {"src/main.rs": planted})
    ctx = GateContext(repo=repo, base=git(repo, "rev-parse", "HEAD"), config=KarmaConfig())
    gate = run_suite(ctx, load_suite().only(("sast",))).result("sast")
    assert gate is not None and gate.status == "failed", gate
    (finding,) = gate.findings
    assert finding.rule == "karma.rust-command-shell-built" and finding.new
    assert (finding.path, finding.line) == ("src/main.rs", 6)
