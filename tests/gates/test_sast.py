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


def test_every_rule_has_a_passing_fixture() -> None:
    rules = semgrep_rules_dir()
    names = {p.stem for p in rules.rglob("*.yaml")}
    assert names == RULES
    for name in names:
        assert next(rules.rglob(f"{name}.py"), None) is not None, f"{name} has no fixture"
    semgrep = Path(sys.executable).parent / "semgrep"
    proc = subprocess.run(
        [str(semgrep), "--test", "--metrics=off", "--disable-version-check", str(rules)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert f"{len(RULES)}/{len(RULES)}: ✓ All tests passed" in proc.stdout + proc.stderr


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
        gate is not None and gate.status == "skipped" and "no changed Python files" in gate.summary
    )


def test_native_and_python_cli_agree_on_the_fixtures(tmp_path: Path) -> None:
    rules = semgrep_rules_dir()
    fixtures = {p.name: p.read_text() for p in rules.rglob("*.py")}
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
    assert {rule for rule, _, _ in found[0]} == {f"karma.{name}" for name in RULES}
