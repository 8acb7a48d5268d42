"""The test command a project defines, read from its base commit's files (never run)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from karma.recipes import Stack, load_stacks
from karma.testcommand import MAX_BYTES, choose, for_tasks, from_commit
from karma.testing.repos import git, init_repo
from karma.teststyle import file_style, is_test_file

DEFAULT = "python -m pytest -q -p no:cacheprovider"


def pick(files: dict[str, str]) -> tuple[str, str]:
    """`choose` on `files` (path -> text), as `from_git` calls it on a commit's."""
    names = list(dict.fromkeys(path.split("/", 1)[0] for path in files))
    tests = ((path, text) for path, text in files.items() if is_test_file(path))
    chosen = choose(files.get, names, DEFAULT, tests)
    return chosen.command, chosen.source


UNITTEST = """\
import unittest


class TestAdd(unittest.TestCase):
    def test_add(self):
        self.assertEqual(1 + 1, 2)
"""
PYTEST_STYLE = "def test_add():\n    assert 1 + 1 == 2\n"


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"tox.ini": "[tox]\nenv_list = py\n[testenv]\ncommands =\n  pip list\n"
                     "  -pytest {posargs:tests} -x\n"},
         ("python -m pytest tests -x", "tox.ini [testenv] commands")),
        ({"tox.ini": "[testenv]\ncommands = coverage run -m pytest {posargs}\n"},
         ("python -m pytest", "tox.ini [testenv] commands")),
        ({"tox.toml": '[env_run_base]\ncommands = [["pytest", "-q", "{posargs}"]]\n'},
         ("python -m pytest -q", "tox.toml env_run_base.commands")),
        ({"pyproject.toml": '[tool.pytest.ini_options]\ntestpaths = ["t"]\n'},
         (DEFAULT, "pyproject.toml [tool.pytest]")),
        ({"setup.cfg": "[tool:pytest]\naddopts = -ra\n"}, (DEFAULT, "setup.cfg [tool:pytest]")),
        ({"pytest.ini": "[pytest]\n"}, (DEFAULT, "pytest.ini")),
        ({"tox.ini": "[pytest]\nxfail_strict = true\n"}, (DEFAULT, "tox.ini [pytest]")),
        ({"pyproject.toml": '[dependency-groups]\ntest = ["pytest>=8", "coverage"]\n'},
         (DEFAULT, "pyproject.toml [dependency-groups]")),
        ({"requirements-dev.txt": "pytest==8.3\n"}, (DEFAULT, "requirements-dev.txt")),
        # A pytest plugin is pytest: a user who lists pytest-cov runs pytest.
        ({"pyproject.toml": '[project.optional-dependencies]\ntest = ["pytest-cov"]\n'},
         (DEFAULT, "pyproject.toml [project.optional-dependencies]")),
        ({"setup.cfg": "[metadata]\nname = x\n[options]\npackages = x\n",
          "tests/test_a.py": UNITTEST},
         ("python -m unittest discover -s tests", "unittest discovery")),
        ({"setup.py": "", "tests/__init__.py": "", "tests/test_a.py": UNITTEST},
         ("python -m unittest discover -s tests -t .", "unittest discovery")),
        ({"setup.py": "", "test/test_a.py": UNITTEST},
         ("python -m unittest discover -s test", "unittest discovery")),
        ({"setup.py": "", "test_a.py": UNITTEST},
         ("python -m unittest discover", "unittest discovery")),
        # No configuration, but tests that only pytest collects: pytest, as a user expects.
        ({"requirements.txt": "", "tests/test_a.py": PYTEST_STYLE},
         (DEFAULT, "tests/test_a.py")),
        ({"requirements.txt": "", "tests/test_a.py": UNITTEST, "tests/test_b.py": PYTEST_STYLE},
         (DEFAULT, "tests/test_b.py")),
        ({"requirements.txt": "", "tests/conftest.py": "", "tests/test_a.py": UNITTEST},
         (DEFAULT, "tests/conftest.py")),
        ({"requirements.txt": "", "tests/test_a.py": "import pytest\n" + UNITTEST},
         (DEFAULT, "tests/test_a.py")),
        ({"requirements.txt": "", "tests/test_a.py": "class TestA:\n    def test_a(self): pass\n"},
         (DEFAULT, "tests/test_a.py")),
        # Nothing to tell by: the stack's own command.
        ({"requirements.txt": ""}, (DEFAULT, "the stack's default")),
        ({"requirements.txt": "", "tests/test_a.py": "x = 1\n"}, (DEFAULT, "the stack's default")),
    ],
)  # fmt: skip
def test_the_projects_own_definition_is_chosen(
    files: dict[str, str], expected: tuple[str, str]
) -> None:
    assert pick(files) == expected


def test_test_files_are_parsed_never_imported(tmp_path: Path) -> None:
    """A base test file that would run code when imported decides by its shape only; one
    that does not parse, nests too deep for the parser, or is binary says nothing."""
    marker = tmp_path / "pwned"
    hostile = f"import os\nos.system('touch {marker}')\nopen({str(marker)!r}, 'w')\n" + UNITTEST
    assert pick({"setup.py": "", "tests/test_a.py": hostile})[1] == "unittest discovery"
    assert not marker.exists()
    assert file_style("def test_(:\n") is None
    assert file_style("x = " + "(" * 100_000 + ")" * 100_000) is None
    assert file_style("\0\xff\ufffd") is None


def test_which_files_are_test_files() -> None:
    assert [p for p in ("tests/test_a.py", "pkg/a_test.py", "conftest.py", "test.py",
                        "tests/helpers.py", ".tox/py/lib/test_x.py", "venv/lib/test_x.py",
                        "node_modules/x/test_y.py", "tests/test_a.txt")
            if is_test_file(p)] == ["tests/test_a.py", "pkg/a_test.py", "conftest.py",
                                    "test.py"]  # fmt: skip


def test_a_nox_tests_session_is_read_with_ast_and_never_executed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    noxfile = f"""
import nox, os
open({str(marker)!r}, "w").write("ran")
os.system("touch {marker}")

@nox.session(python=["3.12"])
def lint(session):
    session.run("pytest", "--evil")

@nox.session(name="tests")
def run_the_tests(s):
    s.install(".[test]")
    s.run("python", "-m", "pytest", "-x", *s.posargs)
"""
    assert pick({"noxfile.py": noxfile}) == ("python -m pytest -x", "noxfile.py session tests")
    assert not marker.exists()


def test_a_nox_session_built_from_code_is_not_used() -> None:
    noxfile = """
import nox
ARGS = ["--boom"]

@nox.session
def tests(session):
    session.run("pytest", *ARGS)
"""
    assert pick({"noxfile.py": noxfile, "pytest.ini": ""}) == (DEFAULT, "pytest.ini")


def test_an_unknown_substitution_in_tox_is_not_guessed() -> None:
    files = {"tox.ini": "[testenv]\ncommands = pytest {env:WHERE}\n", "pytest.ini": ""}
    assert pick(files) == (DEFAULT, "pytest.ini")


def test_from_commit_reads_the_base_and_not_the_working_tree(tmp_path: Path) -> None:
    """A tox.ini or noxfile.py that the change (the working tree) adds is not read."""
    source = tmp_path / "source"
    source.mkdir()
    (source / "pytest.ini").write_text("[pytest]\n")
    repo = init_repo(tmp_path / "repo", source=source, message="base")
    base = git(repo, "rev-parse", "HEAD").strip()
    (repo / "tox.ini").write_text("[testenv]\ncommands = pytest --co\n")
    (repo / "noxfile.py").write_text("import os\nos.system('false')\n")
    assert from_commit(repo, base, DEFAULT).source == "pytest.ini"
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "head")
    head = git(repo, "rev-parse", "HEAD").strip()
    assert from_commit(repo, head, DEFAULT).command == "python -m pytest --co"


def test_from_commit_judges_the_bases_tests_and_not_the_changes(tmp_path: Path) -> None:
    """The change rewrites the suite as unittest classes to get it run without pytest's
    isolation: the base's pytest-style tests still decide. A huge base file is not read."""
    source = tmp_path / "source"
    (source / "tests").mkdir(parents=True)
    (source / "setup.py").write_text("")
    (source / "tests" / "test_a.py").write_text(PYTEST_STYLE)
    (source / "tests" / "test_big.py").write_text(UNITTEST + "#" * MAX_BYTES)
    repo = init_repo(tmp_path / "repo", source=source, message="base")
    base = git(repo, "rev-parse", "HEAD").strip()
    (repo / "tests" / "test_a.py").write_text(UNITTEST)
    git(repo, "commit", "-qam", "unittest now")
    assert from_commit(repo, base, DEFAULT).source == "tests/test_a.py"
    head = git(repo, "rev-parse", "HEAD").strip()
    # At the head (as the base of a later change) the big file is left out: test_a decides.
    chosen = from_commit(repo, head, DEFAULT)
    assert chosen.command == "python -m unittest discover -s tests", chosen
    assert "tests/test_a.py" in chosen.reason, chosen


def test_doctor_and_plan_show_the_command_and_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from karma.cli import main

    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-not-a-key")
    source = tmp_path / "source"
    source.mkdir()
    (source / "pyproject.toml").write_text('[project]\nname = "x"\nversion = "0"\n')
    (source / "tox.ini").write_text("[testenv]\ncommands = pytest {posargs:tests} -x\n")
    repo = init_repo(tmp_path / "repo", source=source, message="base")
    task = {"id": "one", "title": "One", "description": "Do one.", "deps": [],
            "estimated_tokens": 1000, "kind": "code", "files": ["x.py"]}  # fmt: skip
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"request": "do one", "tasks": [task]}))
    capsys.readouterr()
    assert main(["-C", str(repo), "plan", "--plan-file", str(plan), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["test_command"] == {
        "command": "python -m pytest tests -x",
        "source": "tox.ini [testenv] commands",
        "reason": "the default tox env's first command that runs a test runner",
    }
    assert main(["-C", str(repo), "plan", "--plan-file", str(plan)]) == 0
    assert "Tests: `python -m pytest tests -x` from tox.ini [testenv] commands" in (
        capsys.readouterr().out
    )
    main(["-C", str(repo), "doctor", "--json"])
    checks = {c["name"]: c for c in json.loads(capsys.readouterr().out)["checks"]}
    assert checks["test command"]["status"] == "ok"
    assert checks["test command"]["detail"].startswith("`python -m pytest tests -x` from tox.ini")
    # A rich-markup-looking section name is printed as it is, never interpreted.
    main(["-C", str(repo), "doctor"])
    assert "tox.ini [testenv]" in capsys.readouterr().out


def test_plugin_options_of_the_tox_env_are_left_out_and_said() -> None:
    """tox installs pytest-cov and xdist in its own env; the image may not hold them, and
    they change how the suite is measured or spread, not what passes."""
    tox = (
        "[testenv]\ndeps = pytest-cov\n"
        "commands = pytest --cov=calc --cov-report term -n auto {posargs:tests}\n"
    )
    chosen = choose({"tox.ini": tox}.get, ["tox.ini"], DEFAULT)
    assert chosen.command == "python -m pytest tests", chosen
    assert "(--cov=calc --cov-report term -n auto left out" in chosen.reason
    noxfile = (
        "import nox\n\n@nox.session\ndef tests(session):\n"
        "    session.run('pytest', '-nauto', '--cov', '-q', *session.posargs)\n"
    )
    assert pick({"noxfile.py": noxfile}) == ("python -m pytest -q", "noxfile.py session tests")


def _node_repo(tmp_path: Path, script: str) -> tuple[Path, str]:
    source = tmp_path / "source"
    source.mkdir()
    (source / "package.json").write_text(json.dumps({"scripts": {"test": script}}))
    repo = init_repo(tmp_path / "repo", source=source, message="base")
    return repo, git(repo, "rev-parse", "HEAD").strip()


def _node() -> Stack:
    return next(stack for stack in load_stacks() if stack.name == "node")


@pytest.mark.parametrize(
    ("script", "typecheck"),
    [
        ("tsc && node --test test/", False),
        ("npx --no-install tsc -p . && node --test", False),
        ("node --test test/", True),
        ("tscx && node --test", True),  # another tool whose name starts with tsc
        ("echo ok", True),
    ],
)
def test_a_task_type_checks_once(tmp_path: Path, script: str, typecheck: bool) -> None:
    """A base whose `test` script compiles with tsc has no separate `tsc --noEmit` check:
    the tests check would type-check the same files a second time."""
    repo, base = _node_repo(tmp_path, script)
    names = [check.name for check in for_tasks(repo, base, _node()).checks]
    assert names == (["typecheck", "lint", "tests"] if typecheck else ["lint", "tests"])


def test_which_checks_a_task_runs_is_the_bases_choice_not_the_changes(tmp_path: Path) -> None:
    """A change that rewrites the `test` script (to look as if it compiled) does not drop
    the type check: the script is read from the base commit's objects."""
    repo, base = _node_repo(tmp_path, "node --test test/")
    (repo / "package.json").write_text(json.dumps({"scripts": {"test": "tsc; exit 0"}}))
    git(repo, "commit", "-qam", "head")
    assert [c.name for c in for_tasks(repo, base, _node()).checks] == ["typecheck", "lint", "tests"]
    head = git(repo, "rev-parse", "HEAD").strip()
    assert [c.name for c in for_tasks(repo, head, _node()).checks] == ["lint", "tests"]
