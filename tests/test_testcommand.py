"""The test command a project defines, read from its base commit's files (never run)."""

from __future__ import annotations

from pathlib import Path

import pytest

from karma.testcommand import choose, from_commit
from karma.testing.repos import git, init_repo

DEFAULT = "python -m pytest -q -p no:cacheprovider"


def pick(files: dict[str, str], *dirs: str) -> tuple[str, str]:
    chosen = choose(files.get, [*files, *dirs], DEFAULT)
    return chosen.command, chosen.source


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
        ({"pyproject.toml": '[project.optional-dependencies]\ntest = ["pytest-cov"]\n'},
         ("python -m unittest discover", "unittest discovery")),
    ],
)  # fmt: skip
def test_the_projects_own_definition_is_chosen(
    files: dict[str, str], expected: tuple[str, str]
) -> None:
    assert pick(files) == expected


def test_unittest_discovery_starts_in_tests_when_there_is_one() -> None:
    assert pick({"setup.py": ""}, "tests") == (
        "python -m unittest discover -s tests -t .",
        "unittest discovery",
    )


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
