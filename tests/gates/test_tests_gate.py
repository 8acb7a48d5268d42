"""The tests gate on the host: counts, integrity, and each bad input bounded in time."""

from __future__ import annotations

import sys
from pathlib import Path

from karma.config import KarmaConfig
from karma.gates import GateContext, GateResult, load_suite, run_suite
from karma.gates.junit import missing
from karma.recipes import detect_stack
from tests.gates.conftest import PYTEST, git, make_repo, write

PASSING = "def test_one():\n    assert 1\n\n\ndef test_two():\n    assert 2\n"


def run_tests(repo: Path, **overrides: object) -> GateResult:
    settings = {"command": PYTEST, "where": "host", "timeout_s": 60, **overrides}
    ctx = GateContext(
        repo=repo,
        base=git(repo, "rev-parse", "HEAD"),
        config=KarmaConfig(),
        stack=detect_stack(repo),
    )
    gate = run_suite(ctx, load_suite(overrides={"tests": settings}).only(("tests",))).result(
        "tests"
    )
    assert gate is not None
    return gate


def test_passing_suite_counts(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"test_a.py": PASSING})
    gate = run_tests(repo)
    assert gate.status == "passed", gate
    assert gate.data["tests"] == 2 and gate.data["base_tests"] == 2 and gate.data["where"] == "host"


def test_dropping_tests_fails_unless_approved(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"test_a.py": PASSING})
    write(repo, {"test_a.py": "def test_one():\n    assert 1\n"})
    gate = run_tests(repo)
    assert gate.status == "failed" and [f.rule for f in gate.findings] == ["tests.fewer-tests"]
    assert "test_a.py::test_two no longer collected" in gate.findings[0].message
    approved = run_tests(repo, allow_fewer_tests=True)
    assert approved.status == "warning" and [f.rule for f in approved.findings] == ["tests.removed"]
    assert "test_a.py::test_two" in approved.findings[0].message


def test_a_renamed_test_is_named_though_the_count_holds(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"test_a.py": PASSING})
    write(repo, {"test_a.py": PASSING.replace("test_two", "test_deux")})
    gate = run_tests(repo)
    assert gate.status == "warning" and [f.rule for f in gate.findings] == ["tests.removed"]
    assert "test_a.py::test_two (renamed to test_a.py::test_deux?)" in gate.findings[0].message


SUBTESTS = """\
def test_each(subtests):
    for n in range(5):
        with subtests.test(n=n):
            assert n < {limit}


def test_plain():
    assert 1
"""


def test_subtests_are_folded_into_their_test_on_both_sides(tmp_path: Path) -> None:
    """pytest's own subtests write a <testcase> per subtest: the head counts 2 items, as
    the base's collection does, and a failing subtest fails its one test."""
    repo = make_repo(tmp_path / "r", {"test_s.py": SUBTESTS.format(limit=9)})
    gate = run_tests(repo)
    assert gate.status == "passed", gate
    assert gate.data["tests"] == 2 and gate.data["base_tests"] == 2, gate.summary
    write(repo, {"test_s.py": SUBTESTS.format(limit=3)})
    failed = run_tests(repo)
    assert failed.status == "failed" and failed.data["tests"] == 2, failed.summary
    assert failed.summary.startswith("2 tests: 1 passed, 1 failed"), failed.summary
    assert [f.rule for f in failed.findings] == ["tests.failure"]


def test_the_command_is_the_bases_tox_env_and_a_changed_tox_ini_is_not_read(
    tmp_path: Path,
) -> None:
    tox = "[testenv]\ndeps = pytest\ncommands =\n    pytest {posargs:test_a.py}\n"
    project = '[project]\nname = "x"\nversion = "0"\n'
    files = {"pyproject.toml": project, "test_a.py": PASSING, "test_b.py": PASSING, "tox.ini": tox}
    repo = make_repo(tmp_path / "r", files)
    gate = run_tests(repo, command="")
    assert gate.status == "passed", gate
    assert gate.data["command"] == "python -m pytest test_a.py", gate.data
    assert gate.data["command_source"] == "tox.ini [testenv] commands"
    assert gate.data["tests"] == 2, gate.summary  # test_b.py is not in the tox command
    marker = tmp_path / "pwned"
    write(repo, {"tox.ini": f"[testenv]\ncommands = python -m pytest --co {marker}\n"})
    (repo / "noxfile.py").write_text(f"open({str(marker)!r}, 'w')\n")
    again = run_tests(repo, command="")
    assert again.data["command"] == "python -m pytest test_a.py", again.data
    assert not marker.exists()


def test_new_skip_marker_fails_unless_approved(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"test_a.py": PASSING})
    write(
        repo,
        {
            "test_a.py": "import pytest\n\n\n"
            + PASSING.replace("def test_two", "@pytest.mark.skip\ndef test_two")
        },
    )
    gate = run_tests(repo)
    assert gate.status == "failed"
    assert [(f.rule, f.path, f.line) for f in gate.findings] == [
        ("tests.new-skip-marker", "test_a.py", 8)
    ]
    assert run_tests(repo, allow_new_skips=True).status == "passed"


def test_no_tests_is_skipped(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"app.py": "x = 1\n"})
    gate = run_tests(repo)
    assert gate.status == "skipped" and "no tests" in gate.summary


def test_no_stack_no_command_is_skipped(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"README.md": "# docs only\n"})
    gate = run_tests(repo, command="")
    assert gate.status == "skipped" and "no test command" in gate.summary


def test_broken_pyproject_says_what_failed(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"pyproject.toml": "[project\nname = ", "test_a.py": PASSING})
    gate = run_tests(repo)
    assert gate.status == "failed" and gate.findings
    assert "exited" in gate.findings[0].message


def test_hanging_suite_is_stopped_at_its_timeout(tmp_path: Path) -> None:
    hang = "import time\n\n\ndef test_hangs():\n    time.sleep(600)\n"
    repo = make_repo(tmp_path / "r", {"test_a.py": hang})
    gate = run_tests(repo, timeout_s=2)
    assert gate.status == "error" and "did not finish within 2 s" in gate.summary


def test_cli_on_repository_with_broken_pyproject(tmp_path: Path, capsys: object) -> None:
    from karma.cli import main

    repo = make_repo(tmp_path / "r", {"pyproject.toml": "[tool.karma\n", "a.py": "x = 1\n"})
    write(repo, {"a.py": "x = 2\n"})
    code = main(["-C", str(repo), "gate", "--only", "secrets,sast", "--format", "json"])
    assert code == 0
    assert sys.executable


def test_failure_in_a_test_class_points_at_its_file(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "r",
        {
            "tests/__init__.py": "",
            "tests/test_k.py": "class TestK:\n    def test_a(self):\n        assert 1\n",
        },
    )
    write(repo, {"tests/test_k.py": "class TestK:\n    def test_a(self):\n        assert 0\n"})
    gate = run_tests(repo)
    assert [(f.rule, f.path) for f in gate.findings] == [("tests.failure", "tests/test_k.py")]
    assert "TestK::test_a" in gate.findings[0].message


def test_each_new_test_is_the_rename_of_one_lost_test_only() -> None:
    base = ("t.py::a", "t.py::b", "t.py::c", "u.py::d")
    head = ("t.py::a", "t.py::x", "v.py::y")
    assert missing(base, head) == "t.py::b (renamed to t.py::x?), t.py::c, u.py::d"
    many = tuple(f"t.py::test_{i}" for i in range(20_000))
    assert missing(many, many[5:], limit=2) == "t.py::test_0, t.py::test_1 and 3 more"


UNITTESTS = """\
import unittest


class TestCalc(unittest.TestCase):
    def test_add(self):
        for n in range(3):
            with self.subTest(n=n):
                self.assertEqual(n + 1, 1 + n)

    def test_sub(self):
        self.assertEqual(2 - 1, 1)
"""
SETUP = {"setup.py": "", "tests/__init__.py": ""}


def test_a_unittest_suite_is_listed_alike_on_both_sides(tmp_path: Path) -> None:
    """No pytest configuration and TestCase classes only: unittest runs the suite, and
    its loader lists the base's tests and the head's the same way (subtests inside their
    test), so a lost test is named as with pytest."""
    repo = make_repo(tmp_path / "r", {**SETUP, "tests/test_calc.py": UNITTESTS})
    gate = run_tests(repo, command="")
    assert gate.status == "passed", gate
    assert gate.data["command"] == "python -m unittest discover -s tests -t .", gate.data
    assert gate.data["command_source"] == "unittest discovery"
    assert gate.data["tests"] == 2 and gate.data["base_tests"] == 2, gate.summary
    write(repo, {"tests/test_calc.py": UNITTESTS.replace("def test_sub", "def _sub")})
    fewer = run_tests(repo, command="")
    assert fewer.status == "failed" and [f.rule for f in fewer.findings] == ["tests.fewer-tests"]
    assert "tests.test_calc.TestCalc.test_sub no longer collected" in fewer.findings[0].message
    write(repo, {"tests/test_calc.py": UNITTESTS.replace("def test_sub", "def test_minus")})
    renamed = run_tests(repo, command="")
    assert renamed.status == "warning" and [f.rule for f in renamed.findings] == ["tests.removed"]
    assert "(renamed to tests.test_calc.TestCalc.test_minus?)" in renamed.findings[0].message


def test_a_head_that_prints_listing_lines_does_not_pass_for_its_tests(tmp_path: Path) -> None:
    """The head drops a test and prints, at import, lines shaped like the listing's (with
    the marker a fixed-prefix listing would use): they are not counted."""
    repo = make_repo(tmp_path / "r", {**SETUP, "tests/test_calc.py": UNITTESTS})
    forged = "".join(
        f"print('{marker} tests.test_calc.TestCalc.test_sub')\n"
        for marker in ("karma-unittest-id", "0" * 16, "")
    )
    forged += "print('9 tests collected')\n"
    write(repo, {"tests/test_calc.py": forged + UNITTESTS.replace("def test_sub", "def _sub")})
    gate = run_tests(repo, command="")
    assert gate.status == "failed" and [f.rule for f in gate.findings] == ["tests.fewer-tests"]
    assert gate.findings[0].message.startswith("1 tests collected, fewer than the base's 2")


def test_deleting_every_test_fails_and_is_not_skipped(tmp_path: Path) -> None:
    """A head with no tests at all "collects nothing", which for a project without tests
    skips the gate; where the base had tests, it fails it."""
    repo = make_repo(tmp_path / "r", {"test_a.py": PASSING})
    (repo / "test_a.py").unlink()
    (repo / "a.py").write_text("x = 1\n")
    gate = run_tests(repo)
    assert gate.status == "failed", gate
    assert "tests.fewer-tests" in [f.rule for f in gate.findings], gate.findings
    repo = make_repo(tmp_path / "u", {**SETUP, "tests/test_calc.py": UNITTESTS})
    (repo / "tests" / "test_calc.py").write_text("x = 1\n")
    unittest = run_tests(repo, command="")
    assert unittest.status == "failed" and [f.rule for f in unittest.findings] == [
        "tests.fewer-tests"
    ], unittest
    empty = make_repo(tmp_path / "e", {"a.py": "x = 1\n"})
    write(empty, {"a.py": "x = 2\n"})
    assert run_tests(empty).status == "skipped"
