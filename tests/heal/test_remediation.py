"""Remediation code: tiers, rerun of failed tests, lockfiles, quarantine."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from karma.heal import Evidence, PatternTable
from karma.heal.remediation import (
    TIER_ORDER,
    quarantine_test,
    regenerate_lockfile,
    reinstall_dependencies,
    rerun_failed_tests,
    rerun_plan,
    tier_of,
    unavailable,
)  # fmt: skip
from karma.recipes import RemediationName, load_failure_patterns
from karma.sandbox.interface import ExecResult, SandboxSpec
from karma.sandbox.project import NOT_A_PROJECT
from tests.heal.conftest import PYTEST_FAIL, FakeSandbox


def test_every_remediation_has_a_tier() -> None:
    for name in RemediationName.__args__:  # type: ignore[attr-defined]
        assert tier_of(name) in TIER_ORDER
    assert tier_of("lower_gate") == "critical" and tier_of("quarantine_flaky_test") == "elevated"


def test_every_recipe_remediation_is_known() -> None:
    for pattern in load_failure_patterns():
        for spec in pattern.remediations:
            if tier_of(spec.name) == "critical":
                assert spec.proposal, f"{pattern.id}: {spec.name} needs a proposal"


def test_rerun_plan_from_pytest_go_and_jest() -> None:
    plan = rerun_plan(PYTEST_FAIL)
    assert plan is not None and plan.test_ids == ("tests/test_calc.py::test_add",)
    assert plan.command.endswith("tests/test_calc.py::test_add")
    go = rerun_plan("--- FAIL: TestAdd (0.00s)\nFAIL\n")
    assert go is not None and "-run '^(TestAdd)$'" in go.command
    assert rerun_plan("nothing failed here") is None


def test_passing_on_rerun_marks_the_test_flaky() -> None:
    fail = ExecResult("pytest", 1, PYTEST_FAIL, 1.0)
    ok = ExecResult("pytest", 0, "1 passed", 1.0)
    sandbox = FakeSandbox({"python -m pytest": [fail, ok]})
    outcome = rerun_failed_tests(sandbox, PYTEST_FAIL, reruns=3)
    assert outcome.flaky and outcome.passed_on == 2 and len(outcome.runs) == 2


def test_failing_every_rerun_is_not_flaky() -> None:
    sandbox = FakeSandbox({"python -m pytest": [ExecResult("pytest", 1, PYTEST_FAIL, 1.0)]})
    outcome = rerun_failed_tests(sandbox, PYTEST_FAIL, reruns=3)
    assert not outcome.flaky and len(outcome.runs) == 3


def test_lockfile_regeneration_that_fails_is_reported() -> None:
    listing = ExecResult("ls -1a", 0, ".\n..\npoetry.lock\npyproject.toml\n", 0.1)
    failed = ExecResult("x", 1, "version solving failed.", 2.0)
    sandbox = FakeSandbox({"ls": [listing], "rm -f poetry.lock": [failed]})
    outcome = regenerate_lockfile(sandbox)
    assert outcome.lockfile == "poetry.lock" and not outcome.ok
    assert sandbox.commands[-1] == "rm -f poetry.lock && poetry lock --no-interaction"
    assert "failed (exit 1)" in outcome.detail


def test_no_lockfile_no_action() -> None:
    sandbox = FakeSandbox({"ls": [ExecResult("ls", 0, "README.md\n", 0.1)]})
    assert regenerate_lockfile(sandbox).lockfile is None
    # The install script says "nothing to install" (exit 3) where there is no project.
    sandbox = FakeSandbox({"if ": [ExecResult("if", NOT_A_PROJECT, "", 0.1)]})
    assert reinstall_dependencies(sandbox).lockfile is None


def test_remedies_that_cannot_work_in_the_sandbox_are_never_offered() -> None:
    assert "regenerate_lockfile" in unavailable("python")  # re-resolving needs an index
    assert "reinstall_dependencies" not in unavailable("python")  # the image's wheels
    assert "reinstall_dependencies" in unavailable("node")


def test_quarantine_skips_the_test_naming_the_run(tmp_path: Path) -> None:
    test_file = tmp_path / "tests" / "test_net.py"
    test_file.parent.mkdir()
    test_file.write_text("def test_other():\n    pass\n\n\ndef test_flaky():\n    assert True\n")
    outcome = quarantine_test(tmp_path, "tests/test_net.py::test_flaky", "run-42")
    text = test_file.read_text()
    assert outcome.applied and text.startswith("import pytest\n")
    assert (
        '@pytest.mark.skip(reason="quarantined as flaky by karma run run-42")\ndef test_flaky'
        in text
    )
    assert not quarantine_test(tmp_path, "tests/test_net.py::test_flaky", "run-42").applied
    assert not quarantine_test(tmp_path, "tests/missing.py::test_x", "run-42").applied


FLAKY = "import pytest\n\n\ndef test_t():\n    assert True\n"


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A worktree at tmp/a/b/wt, and host test files beside and above it."""
    (tmp_path / "a" / "b" / "wt" / "tests").mkdir(parents=True)
    (tmp_path / "x.py").write_text(FLAKY)
    (tmp_path / "a" / "b" / "x.py").write_text(FLAKY)
    return tmp_path


@pytest.mark.parametrize(
    "test_id",
    [
        "../../x.py::test_t",
        "../x.py::test_t",
        "tests/../../x.py::test_t",
        "{tmp}/x.py::test_t",
        ".git/x.py::test_t",
        "tests/link.py::test_t",
        "tests/linkdir/x.py::test_t",
        "tests/../../../x.py::test_t",
        "::test_t",
        "tests/x.py::test_t(",
    ],
)
def test_quarantine_never_edits_a_file_outside_the_worktree(outside: Path, test_id: str) -> None:
    worktree = outside / "a" / "b" / "wt"
    os.symlink(outside / "x.py", worktree / "tests" / "link.py")
    os.symlink(outside / "a" / "b", worktree / "tests" / "linkdir")
    outcome = quarantine_test(worktree, test_id.format(tmp=outside), "run-1")
    assert not outcome.applied and outcome.reason
    assert (outside / "x.py").read_text() == FLAKY
    assert (outside / "a" / "b" / "x.py").read_text() == FLAKY


def test_quarantine_from_test_output_naming_a_path_outside(outside: Path) -> None:
    worktree = outside / "a" / "b" / "wt"
    output = "FAILED ../../x.py::test_t - assert False\nFAILED /etc/x.py::test_t\n1 failed\n"
    plan = rerun_plan(output)
    assert plan is not None and plan.test_ids == ("../../x.py::test_t", "/etc/x.py::test_t")
    done = [quarantine_test(worktree, test, "run-1") for test in plan.test_ids]
    assert not any(q.applied for q in done) and all(q.reason for q in done)
    assert (outside / "a" / "b" / "x.py").read_text() == FLAKY


def test_quarantine_refusal_names_the_reason(outside: Path) -> None:
    worktree = outside / "a" / "b" / "wt"
    os.symlink(outside / "x.py", worktree / "tests" / "link.py")
    assert "'..' is not allowed" in quarantine_test(worktree, "../../x.py::test_t", "r").reason
    assert "symlink" in quarantine_test(worktree, "tests/link.py::test_t", "r").reason
    assert "no such file" in quarantine_test(worktree, "tests/none.py::test_t", "r").reason


def test_quarantine_keeps_crlf(tmp_path: Path) -> None:
    test_file = tmp_path / "test_win.py"
    test_file.write_bytes(b"def test_flaky():\r\n    assert True\r\n")
    assert quarantine_test(tmp_path, "test_win.py::test_flaky", "run-7").applied
    data = test_file.read_bytes()
    assert data.startswith(b"import pytest\r\n@pytest.mark.skip(") and b"\n" not in data.replace(
        b"\r\n", b""
    )


@pytest.mark.docker
def test_real_sandbox_failed_relock_is_classified(docker_engine: str, tmp_path: Path,
                                                   table: PatternTable) -> None:  # fmt: skip
    from karma.config import KarmaConfig
    from karma.sandbox import get_sandbox

    (tmp_path / "poetry.lock").write_text("# stale\n")
    backend = get_sandbox(KarmaConfig())
    sandbox = backend.start(SandboxSpec(docker_engine, tmp_path, "heal-test", "relock"))
    try:
        outcome = regenerate_lockfile(sandbox, timeout_s=60)
    finally:
        sandbox.close()
    assert outcome.lockfile == "poetry.lock" and not outcome.ok and outcome.result is not None
    result = table.classify(Evidence.from_exec(outcome.result, step="install"))
    assert result.failure_class == "missing_tool"  # no poetry in the base image
    assert not (tmp_path / "poetry.lock").exists()
