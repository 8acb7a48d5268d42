"""The approval gate: critical paths put the result in needs_approval, they do not fail it."""

from __future__ import annotations

from pathlib import Path

from karma.config import KarmaConfig
from karma.gates import GateContext, load_suite, run_suite
from tests.gates.conftest import git, make_repo, write


def test_critical_paths_need_approval(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"app.py": "x = 1\n", "db/migrations/0001.py": "x = 1\n"})
    write(
        repo,
        {".github/workflows/ci.yml": "on: push\n", "src/auth.py": "x = 1\n", "app.py": "x = 2\n"},
    )
    (repo / "db/migrations/0001.py").unlink()
    ctx = GateContext(repo=repo, base=git(repo, "rev-parse", "HEAD"), config=KarmaConfig())
    result = run_suite(ctx, load_suite().only(("approval",)))
    gate = result.result("approval")
    assert gate is not None and gate.status == "warning"
    assert {f.path for f in gate.findings} == {
        ".github/workflows/ci.yml",
        "db/migrations/0001.py",
        "src/auth.py",
    }
    assert all("a human must approve" in f.message for f in gate.findings)
    assert result.needs_approval and result.status == "passed"
    assert result.as_json()["needs_approval"] is True


def test_extra_paths_and_no_match(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"app.py": "x = 1\n"})
    write(repo, {"app.py": "x = 2\n"})
    ctx = GateContext(repo=repo, base=git(repo, "rev-parse", "HEAD"), config=KarmaConfig())
    plain = run_suite(ctx, load_suite().only(("approval",)))
    assert plain.outcomes[0].result.status == "passed" and not plain.needs_approval
    extra = load_suite(overrides={"approval": {"extra_paths": ["app.py"]}}).only(("approval",))
    assert run_suite(ctx, extra).needs_approval
