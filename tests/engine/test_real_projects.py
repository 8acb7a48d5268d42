"""`karma build` on Python projects in the shapes real ones have: real Docker, git, tests.

Each fixture project is made here, in tmp_path: a `src/` layout on hatchling + hatch-vcs
whose tests import the package and read its installed metadata, and a setuptools-scm
one. Neither imports without being installed, and their version only exists through the
VCS backend, which has no `.git` in the sandbox. The scripted model builds a two-task
feature; each task passes in one attempt, and the branch's own tests pass.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from karma.recipes import load_failure_patterns
from karma.store import Store
from karma.testing.repos import git, init_repo
from tests.engine.conftest import ScriptedBuild

pytestmark = pytest.mark.docker

REQUEST = "Add sub() and mul() to the calculator"

TESTS_OF_THE_BASE = """\
import importlib.metadata

import {pkg}


def test_add():
    assert {pkg}.add(1, 2) == 3


def test_installed_version_is_the_package_version():
    assert importlib.metadata.version("{pkg}") == {pkg}.__version__
"""


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


def hatch_vcs_project(root: Path) -> str:
    """src/ layout, hatchling + hatch-vcs writing a git-ignored _version.py, a `testing` extra."""
    _write(
        root,
        {
            "pyproject.toml": """\
                [build-system]
                requires = ["hatchling", "hatch-vcs"]
                build-backend = "hatchling.build"

                [project]
                name = "calc"
                dynamic = ["version"]
                requires-python = ">=3.9"

                [project.optional-dependencies]
                testing = ["pytest"]

                [tool.hatch.version]
                source = "vcs"

                [tool.hatch.build.hooks.vcs]
                version-file = "src/calc/_version.py"

                [tool.pytest.ini_options]
                testpaths = ["tests"]
                """,
            ".gitignore": "src/calc/_version.py\n",
            "src/calc/__init__.py": """\
                from calc._version import version as __version__
                from calc.ops import add

                __all__ = ["__version__", "add"]
                """,
            "src/calc/ops.py": "def add(a, b):\n    return a + b\n",
            "tests/test_calc.py": TESTS_OF_THE_BASE.format(pkg="calc"),
        },
    )
    return "calc"


def setuptools_scm_project(root: Path) -> str:
    """src/ layout, setuptools + setuptools-scm, the version read from the metadata."""
    _write(
        root,
        {
            "pyproject.toml": """\
                [build-system]
                requires = ["setuptools>=64", "setuptools-scm>=8"]
                build-backend = "setuptools.build_meta"

                [project]
                name = "scmcalc"
                dynamic = ["version"]

                [project.optional-dependencies]
                test = ["pytest"]

                [tool.setuptools_scm]
                """,
            ".gitignore": "*.egg-info/\nbuild/\n",
            "src/scmcalc/__init__.py": """\
                from importlib.metadata import version

                from scmcalc.ops import add

                __version__ = version("scmcalc")
                __all__ = ["__version__", "add"]
                """,
            "src/scmcalc/ops.py": "def add(a, b):\n    return a + b\n",
            "tests/test_calc.py": TESTS_OF_THE_BASE.format(pkg="scmcalc"),
        },
    )
    return "scmcalc"


def flit_project(root: Path) -> str:
    """The package at the root, flit_core, version in the module, unittest tests."""
    _write(
        root,
        {
            "pyproject.toml": """\
                [build-system]
                requires = ["flit_core>=3.4,<4"]
                build-backend = "flit_core.buildapi"

                [project]
                name = "flitcalc"
                dynamic = ["version", "description"]
                """,
            "flitcalc/__init__.py": """\
                \"\"\"A calculator.\"\"\"

                from flitcalc.ops import add

                __version__ = "1.2.0"
                __all__ = ["add"]
                """,
            "flitcalc/ops.py": "def add(a, b):\n    return a + b\n",
            "tests/__init__.py": "",
            "tests/test_calc.py": """\
                import importlib.metadata
                import unittest

                import flitcalc


                class TestCalc(unittest.TestCase):
                    def test_add(self):
                        self.assertEqual(flitcalc.add(1, 2), 3)

                    def test_installed_version_is_the_package_version(self):
                        self.assertEqual(importlib.metadata.version("flitcalc"), "1.2.0")
                """,
        },
    )
    return "flitcalc"


def poetry_project(root: Path) -> str:
    """src/ layout on poetry-core, pytest in a PEP 735 `test` dependency group."""
    _write(
        root,
        {
            "pyproject.toml": """\
                [build-system]
                requires = ["poetry-core>=2.0"]
                build-backend = "poetry.core.masonry.api"

                [project]
                name = "poecalc"
                version = "0.3.0"
                requires-python = ">=3.9"

                [tool.poetry]
                packages = [{ include = "poecalc", from = "src" }]

                [dependency-groups]
                test = ["pytest"]
                """,
            "src/poecalc/__init__.py": """\
                from importlib.metadata import version

                from poecalc.ops import add

                __version__ = version("poecalc")
                __all__ = ["__version__", "add"]
                """,
            "src/poecalc/ops.py": "def add(a, b):\n    return a + b\n",
            "tests/test_calc.py": TESTS_OF_THE_BASE.format(pkg="poecalc"),
        },
    )
    return "poecalc"


def tox_project(root: Path) -> str:
    """Driven by tox: its default env's `commands` name the suite (tests/unit only; the
    slow tests beside it are not the project's default run). setuptools, src/ layout."""
    _write(
        root,
        {
            "pyproject.toml": """\
                [build-system]
                requires = ["setuptools>=64"]
                build-backend = "setuptools.build_meta"

                [project]
                name = "toxcalc"
                version = "2.0.0"
                """,
            "tox.ini": """\
                [tox]
                env_list = py3

                [testenv]
                deps = pytest
                commands =
                    python -c "print('tox env ready')"
                    pytest {posargs:tests/unit} -ra
                """,
            ".gitignore": "*.egg-info/\nbuild/\n",
            "src/toxcalc/__init__.py": """\
                from importlib.metadata import version

                from toxcalc.ops import add

                __version__ = version("toxcalc")
                __all__ = ["__version__", "add"]
                """,
            "src/toxcalc/ops.py": "def add(a, b):\n    return a + b\n",
            "tests/unit/test_calc.py": TESTS_OF_THE_BASE.format(pkg="toxcalc"),
            "tests/slow/test_slow.py": "def test_never_run_by_default():\n    assert False\n",
        },
    )
    return "toxcalc"


def _where(pkg: str) -> str:
    return pkg if pkg == "flitcalc" else f"src/{pkg}"


def _tests(pkg: str) -> str:
    return "tests/unit" if pkg == "toxcalc" else "tests"


def _task(pkg: str, name: str, op: str, deps: list[str]) -> dict[str, Any]:
    return {
        "id": name,
        "title": f"Add {name}()",
        "description": f"Add {name}(a, b) to {_where(pkg)}/{name}.py with tests in {_tests(pkg)}/.",
        "deps": deps,
        "estimated_tokens": 3000,
        "kind": "code",
        "files": [f"{_where(pkg)}/{name}.py", f"{_tests(pkg)}/test_{name}.py"],
    }


UNITTEST = """\
import unittest

from {pkg}.{name} import {name}


class Test{title}(unittest.TestCase):
    def test_{name}(self):
        self.assertEqual({name}(6, 3), 6 {op} 3)
"""


def _conversation(pkg: str, name: str, op: str) -> dict[str, Any]:
    code = f"def {name}(a, b):\n    return a {op} b\n"
    test = f"from {pkg}.{name} import {name}\n\n\ndef test_{name}():\n"
    test += f"    assert {name}(6, 3) == 6 {op} 3\n"
    if pkg == "flitcalc":
        test = UNITTEST.format(pkg=pkg, name=name, title=name.title(), op=op)
    calls = [
        {"name": "write_file", "arguments": {"path": f"{_where(pkg)}/{name}.py", "content": code}},
        {
            "name": "write_file",
            "arguments": {"path": f"{_tests(pkg)}/test_{name}.py", "content": test},
        },
    ]
    return {
        "name": name,
        "match": {"user": [f"Task {name}:"]},
        "replies": [
            {"text": "Writing it.", "tool_calls": calls},
            {
                "text": "Testing.",
                "tool_calls": [
                    {
                        "name": "run",
                        "arguments": {"command": "python -m pytest -q -p no:cacheprovider"},
                    }
                ],
            },
            {
                "text": "Done.",
                "tool_calls": [
                    {"name": "finish", "arguments": {"summary": f"Added {name}() with a test."}}
                ],
            },
        ],
    }


def script(pkg: str) -> dict[str, Any]:
    plan = {"tasks": [_task(pkg, "sub", "-", []), _task(pkg, "mul", "*", ["sub"])]}
    return {
        "conversations": [
            {
                "name": "planner",
                "match": {"tool": "submit_plan"},
                "replies": [
                    {
                        "text": "Two tasks.",
                        "tool_calls": [{"name": "submit_plan", "arguments": plan}],
                    }
                ],
            },
            _conversation(pkg, "sub", "-"),
            _conversation(pkg, "mul", "*"),
            {
                "name": "reviewer",
                "match": {"tool": "submit_review"},
                "replies": [
                    {
                        "text": "Reviewed.",
                        "tool_calls": [
                            {
                                "name": "submit_review",
                                "arguments": {
                                    "verdict": "approve",
                                    "summary": "Small, tested.",
                                    "findings": [],
                                },
                            }
                        ],
                    }
                ],
            },
        ]
    }


Run = Callable[[Path, dict[str, Any]], tuple[int, dict[str, Any]]]


@pytest.fixture
def build(scripted_build: ScriptedBuild) -> Run:
    return lambda repo, steps: scripted_build(repo, steps, REQUEST)


def _branch_tests_pass(build: Run, repo: Path, result: dict[str, Any], source: str) -> None:
    del build
    assert result["status"] == "succeeded", result
    tasks = {t["id"]: t for t in result["tasks"]}
    assert set(tasks) == {"sub", "mul"}
    assert all(t["status"] == "succeeded" and t["attempts"] == 1 for t in tasks.values()), tasks
    gates = {g["name"]: g for g in result["gates"]}
    # The tests gate installed the project in its own sandbox: head and base both import it.
    assert gates["tests"]["status"] == "passed", gates["tests"]
    assert gates["tests"]["summary"].startswith("4 tests: 4 passed"), gates["tests"]
    summary = gates["tests"]["summary"]
    # The suite ran as the project defines it, and the gate says which definition it took.
    assert summary.endswith(f"from {source}"), summary
    if source == "unittest discovery":
        assert "`python -m unittest discover -s tests -t .`" in summary, summary
    # Head and base counted alike: pytest's collection, or unittest's own loader.
    assert "(base collected 2)" in summary, summary
    files = git(repo, "ls-tree", "-r", "--name-only", result["branch"]).split()
    assert not any(f.endswith("_version.py") or ".egg-info" in f for f in files), files


@pytest.mark.parametrize(
    ("make", "source"),
    [
        (hatch_vcs_project, "pyproject.toml [tool.pytest]"),
        (setuptools_scm_project, "pyproject.toml [project.optional-dependencies]"),
        (flit_project, "unittest discovery"),
        (poetry_project, "pyproject.toml [dependency-groups]"),
        (tox_project, "tox.ini [testenv] commands"),
    ],
)
def test_src_layout_projects_build_in_one_attempt_per_task(
    make: Callable[[Path], str], source: str, build: Run, tmp_path: Path
) -> None:
    pkg = make(tmp_path / "source")
    repo = init_repo(tmp_path / "repo", source=tmp_path / "source", message="calc: initial")
    code, result = build(repo, script(pkg))
    assert code == 0, result
    _branch_tests_pass(build, repo, result, source)
    store = Store(repo / ".karma" / "karma.db")
    rows = store.query("SELECT status FROM attempts WHERE run_id = ?", (result["run_id"],))
    assert [r["status"] for r in rows] == ["succeeded", "succeeded"]


def test_an_import_error_in_a_src_project_is_healed_by_the_remedy_the_table_picks(
    build: Run, tmp_path: Path
) -> None:
    """Attempt 1 of `sub` writes its module under the wrong name: the tests fail with
    ModuleNotFoundError, the failure is classified as the import error it is (not a
    network error), the table's remedy is applied, and attempt 2 passes."""
    source = tmp_path / "source"
    pkg = hatch_vcs_project(source)
    repo = init_repo(tmp_path / "repo", source=source, message="calc: initial")
    steps = script(pkg)
    broken = _conversation(pkg, "sub", "-")
    broken["name"] = "sub-broken"
    broken["match"] = {"user": ["Task sub:", "Attempt 1\n"]}
    broken["replies"][0]["tool_calls"][0]["arguments"]["path"] = f"src/{pkg}/subtract.py"
    steps["conversations"].insert(0, broken)
    code, result = build(repo, steps)
    assert code == 0, result
    task = next(t for t in result["tasks"] if t["id"] == "sub")
    assert task["status"] == "succeeded" and task["attempts"] == 2, task
    first = task["history"][0]
    assert first["status"] == "failed" and first["class"] == "import_error", first
    table = next(p for p in load_failure_patterns() if p.id == "py.import.module_not_found")
    assert first["remediation"] == table.remediations[0].name  # the ordered chooser's pick


def test_a_remedy_that_fails_is_recorded_as_the_remedy_failing(build: Run, tmp_path: Path) -> None:
    """The same import error twice: after retry_with_hint the table's next remedy is
    reinstall_dependencies, which cannot find a dependency the image build dropped (a
    direct URL). It fails as itself: the failure stays the import error it treated (not
    a network error), another remedy is taken, and the task still gets done."""
    source = tmp_path / "source"
    pkg = hatch_vcs_project(source)
    pyproject = source / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace(
            'requires-python = ">=3.9"',
            'requires-python = ">=3.9"\ndependencies = ["leftpad @ https://example.invalid/l.whl"]',
        )
        + "\n[tool.hatch.metadata]\nallow-direct-references = true\n"
    )
    repo = init_repo(tmp_path / "repo", source=source, message="calc: initial")
    steps = script(pkg)
    for number in (1, 2):
        broken = _conversation(pkg, "sub", "-")
        broken["name"] = f"sub-broken-{number}"
        broken["match"] = {"user": ["Task sub:", f"Attempt {number}\n"]}
        broken["replies"][0]["tool_calls"][0]["arguments"]["path"] = f"src/{pkg}/subtract.py"
        steps["conversations"].insert(0, broken)
    code, result = build(repo, steps)
    assert code == 0, result
    task = next(t for t in result["tasks"] if t["id"] == "sub")
    assert task["status"] == "succeeded" and task["attempts"] == 4, task
    history = task["history"]
    assert [h["remediation"] for h in history[:3]] == [
        "retry_with_hint",
        "reinstall_dependencies",
        "retry_with_hint",  # the remedy just tried is not repeated on the same failure
    ], history
    assert [h["class"] for h in history[:3]] == ["import_error"] * 3, history
    third = Store(repo / ".karma" / "karma.db").attempts(result["run_id"], "sub")[2]
    assert third.summary is not None and third.summary.startswith(
        "reinstall_dependencies failed"
    ), third.summary
    assert json.loads(third.evidence_json or "{}")["step"] == "install"


def test_a_project_that_does_not_install_fails_the_install_step_not_the_engine(
    build: Run, tmp_path: Path
) -> None:
    """hatchling refuses a direct-URL dependency without `allow-direct-references`: every
    attempt's install fails, is recorded as the install step, and the task escalates."""
    source = tmp_path / "source"
    pkg = hatch_vcs_project(source)
    pyproject = source / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace(
            'requires-python = ">=3.9"',
            'requires-python = ">=3.9"\ndependencies = ["leftpad @ https://example.invalid/l.whl"]',
        )
    )
    repo = init_repo(tmp_path / "repo", source=source, message="calc: initial")
    code, result = build(repo, script(pkg))
    assert code != 0 and result["status"] == "escalated", result
    rows = Store(repo / ".karma" / "karma.db").attempts(result["run_id"], "sub")
    assert rows and all(r.status == "failed" for r in rows)
    assert {json.loads(r.evidence_json or "{}")["step"] for r in rows} == {"install"}
    assert all((r.summary or "").startswith("installing the project: failed") for r in rows)
