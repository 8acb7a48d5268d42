"""Attacks on the sandboxed gates through the real Docker backend (issue #10, holes 3/9/12).

Code under test runs in a gate sandbox; whatever it does there must not change the tree
under check (later gates and the host's git read it), forge the tests gate's verdict, or
crash the gate stage with a malformed report.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from karma.advisories import AdvisoryServer
from karma.config import KarmaConfig
from karma.gates import GateContext, SuiteResult, load_suite, run_suite
from karma.recipes import detect_stack
from tests.gates.conftest import git, make_repo, write

pytestmark = pytest.mark.docker

PASSING = "def test_one():\n    assert 1\n"
FAILING = PASSING + "\n\ndef test_broken():\n    assert 0, 'the real failure'\n"
FLIP = (
    "import pytest\n\n\n@pytest.hookimpl(hookwrapper=True)\n"
    "def pytest_runtest_makereport(item, call):\n"
    "    outcome = yield\n    outcome.get_result().outcome = 'passed'\n"
)


def gates(repo: Path, names: tuple[str, ...], osv: AdvisoryServer | None = None) -> SuiteResult:
    from karma.sandbox import get_sandbox
    from karma.sandbox.images import ensure_image

    config = KarmaConfig.model_validate(
        {
            "sandbox": {"base_image": "karma/base:bookworm"},
            "gates": {"audit": {"osv_url": osv.url if osv else ""}},
        }
    )
    backend = get_sandbox(config)
    ctx = GateContext(
        repo=repo,
        base=git(repo, "rev-parse", "HEAD"),
        config=config,
        stack=detect_stack(repo),
        start_sandbox=backend.start,
        sandbox_image=ensure_image("python", repo, config),
        run_id="gate-attacks",
    )
    return run_suite(ctx, load_suite().only(names))


def test_a_suite_that_edits_its_tree_changes_only_a_throwaway_copy(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"requirements.txt": "", "app.py": "X = 1\n"})
    # Module-level code of a new conftest.py (no hook: it runs) rewrites what the later
    # gates and the host's git would read: the source, a marker, and .git itself.
    evil = (
        "import os, pathlib, shutil\n"
        "root = pathlib.Path(__file__).parent\n"
        "(root / 'app.py').write_text('X = 2  # rewritten by the suite\\n')\n"
        "(root / 'MARKER').write_text('written by code under test')\n"
        "if (root / '.git').is_dir():\n"
        "    shutil.rmtree(root / '.git', ignore_errors=True)\n"
        "(root / '.git').write_text('gitdir: /tmp/evil\\n')\n"
    )
    write(repo, {"conftest.py": evil, "test_app.py": "def test_x():\n    assert True\n"})
    status_before = git(repo, "status", "--porcelain")
    result = gates(repo, ("tests",))
    tests = result.result("tests")
    assert tests is not None and tests.data["where"] == "sandbox", tests
    assert (repo / "app.py").read_text() == "X = 1\n"
    assert not (repo / "MARKER").exists()
    assert (repo / ".git").is_dir() and (repo / ".git" / "HEAD").is_file()
    assert git(repo, "status", "--porcelain") == status_before


def test_the_sandboxed_run_cannot_be_talked_into_passing(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"requirements.txt": "", "test_a.py": PASSING})
    write(
        repo,
        {
            "test_a.py": FAILING,
            "conftest.py": FLIP,
            "pytest.py": "print('1 passed')\n",
            "pytest.ini": "[pytest]\naddopts = --co -p no:junitxml\n",
        },
    )
    tests = gates(repo, ("tests",)).result("tests")
    assert tests is not None and tests.status == "failed", tests
    assert tests.data["where"] == "sandbox" and tests.data["isolated"] is True
    rules = {f.rule for f in tests.findings}
    assert "tests.outcome-hook" in rules, tests.findings
    assert any("the real failure" in f.message for f in tests.findings), tests.findings


@pytest.mark.parametrize(
    "swap",
    [
        "os.remove(p); os.symlink('/etc/passwd', p)",
        "os.remove(p); os.mkfifo(p)",
        "open(p, 'w').write('<testsuite tests=\"999\" failures=\"0\"')",
    ],
    ids=["symlink", "fifo", "truncated-xml"],
)
def test_a_malformed_report_is_a_finding_not_a_crash(tmp_path: Path, swap: str) -> None:
    """Code under test replaces the JUnit report after pytest wrote it (hole 12)."""
    repo = make_repo(tmp_path / "r", {"requirements.txt": "", "test_a.py": PASSING})
    swapper = (
        "import atexit, os\n\n\n"
        "def _swap():\n    p = '/tmp/junit.xml'\n"
        f"    if os.path.exists(p):\n        {swap}\n\n\n"
        "atexit.register(_swap)\n"
    )
    write(repo, {"test_a.py": FAILING + "\n\n" + swapper})
    tests = gates(repo, ("tests",)).result("tests")
    assert tests is not None, "the gate stage crashed"
    if "testsuite" in swap:
        assert tests.status == "error" and "unreadable JUnit XML" in tests.summary, tests
    else:  # no report could be copied out: judged by the exit code, the failure stands
        assert tests.status == "failed", tests
        assert "tests.command-failed" in {f.rule for f in tests.findings}, tests.findings


def test_audit_is_not_answered_by_a_repository_pip(tmp_path: Path, osv: AdvisoryServer) -> None:
    repo = make_repo(tmp_path / "r", {"requirements.txt": "", "test_a.py": PASSING})
    # A dependency change too, so that the diff-aware audit queries at all.
    write(repo, {"pip/__init__.py": "", "pip/__main__.py": "print('')\n",
                 "requirements.txt": "# pinned below\n"})  # fmt: skip
    audit = gates(repo, ("audit",), osv).result("audit")
    assert audit is not None and audit.status in ("passed", "warning"), audit
    assert audit.data["source"] == "sandbox" and audit.data["packages"] >= 1
