const cp = require("child_process");
const { exec, execSync, execFile } = require("node:child_process");

function bad(req, res) {
  // ruleid: js-child-process-built-command
  exec("ls " + req.query.dir, (err, out) => res.send(out));
  // ruleid: js-child-process-built-command
  execSync(`git log ${req.body.ref}`);
  // ruleid: js-child-process-built-command
  cp.exec(req.query.cmd);
  // ruleid: js-child-process-built-command
  require("child_process").execSync("rm -rf " + req.params.name);
  // ruleid: js-child-process-built-command
  cp.spawn(`tar xf ${req.query.file}`, { shell: true });
}

function good(req, res) {
  // ok: js-child-process-built-command
  exec("ls -l", (err, out) => res.send(out));
  // ok: js-child-process-built-command
  execFile("ls", [req.query.dir]);
  // ok: js-child-process-built-command
  cp.spawn("git", ["log", req.body.ref]);
  // ok: js-child-process-built-command
  cp.spawn("git", ["log", req.body.ref], { cwd: "/srv" });
  // ok: js-child-process-built-command
  /x/.exec(req.query.dir);
}
