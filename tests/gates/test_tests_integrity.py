"""Attacks on the tests gate through its real path: real git, real pytest, real Docker.

Each test is a change that tries to talk the gate into passing (hole 9 of issue #10) or
to reach past it: outcome hooks, shadowed modules, the head's pytest configuration, skip
markers in every spelling, the host environment, and a suite that edits its tree.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from karma.config import KarmaConfig
from karma.gates import GateContext, GateResult, load_suite, run_suite
from karma.recipes import detect_stack
from tests.gates.conftest import PYTEST, git, make_repo, write

PASSING = "def test_one():\n    assert 1\n"
FAILING = PASSING + "\n\ndef test_broken():\n    assert 0, 'the real failure'\n"
FLIP = """
import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    report.outcome = "passed"
"""


def run_tests(repo: Path, config: KarmaConfig | None = None, **overrides: object) -> GateResult:
    settings = {"command": PYTEST, "where": "host", "timeout_s": 60, **overrides}
    ctx = GateContext(
        repo=repo,
        base=git(repo, "rev-parse", "HEAD"),
        config=config or KarmaConfig(),
        stack=detect_stack(repo),
    )
    suite = load_suite(overrides={"tests": settings}).only(("tests",))
    gate = run_suite(ctx, suite).result("tests")
    assert gate is not None
    return gate


def rules(gate: GateResult) -> set[str]:
    return {f.rule for f in gate.findings}


def real_failure_reported(gate: GateResult) -> bool:
    return any(f.rule == "tests.failure" and "the real failure" in f.message for f in gate.findings)


HOOKED_CONFTESTS = {
    "makereport-wrapper": {"conftest.py": FLIP},
    "report-teststatus": {
        "conftest.py": "def pytest_report_teststatus(report, config):\n"
        "    if report.when == 'call' and report.failed:\n"
        "        report.outcome = 'passed'\n"
        "        return 'passed', '.', 'PASSED'\n"
    },
    "logreport-mutation": {
        "conftest.py": "def pytest_runtest_logreport(report):\n    report.outcome = 'passed'\n"
    },
    "deselect-in-modifyitems": {
        "conftest.py": "def pytest_collection_modifyitems(config, items):\n"
        "    items[:] = [i for i in items if 'broken' not in i.name]\n"
    },
    "class-registered-at-configure": {
        "conftest.py": "class Flip:\n"
        "    def pytest_runtest_logreport(self, report):\n"
        "        report.outcome = 'passed'\n\n\n"
        "def pytest_configure(config):\n"
        "    config.pluginmanager.register(Flip())\n"
    },
    "plugin-module-via-pytest_plugins": {
        "conftest.py": "pytest_plugins = ['flipper']\n",
        "flipper.py": FLIP,
    },
    # The module with the flipping code is already at base (unused there): the change
    # only wires it into a conftest.py, under a name the function scan would not see.
    "hook-imported-from-a-module": {
        "conftest.py": "from flipper import pytest_runtest_makereport  # noqa: F401\n"
    },
    "hook-assigned-under-its-name": {
        "conftest.py": "import flipper\n\npytest_runtest_makereport = flipper.hidden\n"
    },
    "star-import": {"conftest.py": "from flipper import *  # noqa: F403\n"},
    "globals-injection": {
        "conftest.py": "import flipper\n\nglobals()['pytest_runtest_' + 'makereport'] = "
        "flipper.hidden\n"
    },
    "sessionfinish-exitstatus": {
        "conftest.py": "def pytest_sessionfinish(session, exitstatus):\n"
        "    session.exitstatus = 0\n"
    },
}


AT_BASE = {"flipper.py": FLIP + "\n\nhidden = pytest_runtest_makereport\n"}


@pytest.mark.parametrize("variant", sorted(HOOKED_CONFTESTS))
def test_outcome_hooks_block_and_the_real_failures_are_still_reported(
    tmp_path: Path, variant: str
) -> None:
    repo = make_repo(tmp_path / "r", {"test_a.py": PASSING, **AT_BASE})
    write(repo, {"test_a.py": FAILING, **HOOKED_CONFTESTS[variant]})
    gate = run_tests(repo)
    assert gate.status == "failed", gate
    assert "tests.outcome-hook" in rules(gate), gate.findings
    assert real_failure_reported(gate), gate.findings


def test_a_hook_the_base_already_had_is_not_flagged_again(tmp_path: Path) -> None:
    hook = "def pytest_collection_modifyitems(config, items):\n    items.sort(key=str)\n"
    repo = make_repo(tmp_path / "r", {"test_a.py": PASSING, "conftest.py": hook})
    write(repo, {"conftest.py": hook + "\n\nX = 1\n", "test_a.py": PASSING * 1})
    gate = run_tests(repo)
    assert gate.status == "passed", gate


def test_a_fixture_only_conftest_is_ordinary_work(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"test_a.py": PASSING})
    write(
        repo,
        {
            "conftest.py": "import os\n\nimport pytest\n\n\n@pytest.fixture\n"
            "def answer(monkeypatch):\n    monkeypatch.setattr(os, 'sep', '/')\n"
            "    monkeypatch.setenv('X', '1')\n    return 42\n",
            "test_b.py": "def test_answer(answer):\n    assert answer == 42\n",
        },
    )
    gate = run_tests(repo)
    assert gate.status == "passed" and gate.data["tests"] == 2, gate


SHADOW = "import sys\nprint('2 passed')\nsys.exit(0)\n"


@pytest.mark.parametrize(
    "files",
    [
        {"pytest.py": SHADOW, "_pytest/__init__.py": SHADOW, "pluggy.py": SHADOW},
        {"pytest/__init__.py": "", "pytest/__main__.py": SHADOW},
    ],
    ids=["pytest.py+_pytest+pluggy", "pytest-package"],
)
def test_a_repository_module_cannot_shadow_pytest(tmp_path: Path, files: dict[str, str]) -> None:
    repo = make_repo(tmp_path / "r", {"test_a.py": PASSING})
    write(repo, {"test_a.py": FAILING, **files})
    gate = run_tests(repo)
    assert gate.status == "failed" and real_failure_reported(gate), gate
    assert gate.data["isolated"] is True


EVIL_PLUGIN = {"evil.py": FLIP}


@pytest.mark.parametrize(
    "config",
    [
        {"pytest.ini": "[pytest]\naddopts = -p evil\n"},
        {"pytest.ini": "[pytest]\naddopts = --co\n"},
        {"pytest.ini": "[pytest]\naddopts = -k one --deselect test_a.py::test_broken\n"},
        {"pytest.ini": "[pytest]\npython_functions = nothing_*\n"},
        {"pyproject.toml": '[tool.pytest.ini_options]\naddopts = "-p evil"\n'},
        {"pyproject.toml": '[tool.pytest]\naddopts = ["-p", "evil"]\n'},
        {"setup.cfg": "[tool:pytest]\naddopts = -p evil\n"},
        {"tox.ini": "[pytest]\naddopts = -p evil\n"},
        {"pytest.toml": '[pytest]\naddopts = ["-p", "evil"]\n'},
    ],
    ids=lambda c: f"{next(iter(c))}:{next(iter(c.values())).splitlines()[-1]}",
)
def test_the_heads_pytest_configuration_is_not_used(tmp_path: Path, config: dict[str, str]) -> None:
    repo = make_repo(tmp_path / "r", {"test_a.py": PASSING})
    # evil.py defines a hook, so it is also flagged; the point here is that the run,
    # configured by the base, still reports the failure.
    write(repo, {"test_a.py": FAILING, **config, **EVIL_PLUGIN})
    gate = run_tests(repo)
    assert gate.status == "failed" and real_failure_reported(gate), gate


def test_the_base_configuration_is_used(tmp_path: Path) -> None:
    """A base `pytest.ini` with `--strict-markers` still applies: the head cannot drop it."""
    ini = "[pytest]\naddopts = --strict-markers\n"
    repo = make_repo(tmp_path / "r", {"test_a.py": PASSING, "pytest.ini": ini})
    write(
        repo,
        {
            "pytest.ini": "[pytest]\n",
            "test_b.py": "import pytest\n\n\n@pytest.mark.undeclared\ndef test_b():\n    pass\n",
        },
    )
    gate = run_tests(repo)
    assert gate.status == "failed", gate


ROOT_LAYOUT = {
    "app.py": "def add(a, b):\n    return a + b\n",
    "tests/test_app.py": "from app import add\n\n\ndef test_add():\n    assert add(1, 2) == 3\n",
}
SRC_LAYOUT = {
    "pyproject.toml": '[project]\nname = "pkg"\nversion = "0"\n\n'
    '[tool.pytest.ini_options]\npythonpath = ["src"]\ntestpaths = ["tests"]\n',
    "src/pkg/__init__.py": "def add(a, b):\n    return a + b\n",
    "tests/test_pkg.py": "from pkg import add\n\n\ndef test_add():\n    assert add(1, 2) == 3\n",
}
SRC_NATIVE_TOML = {
    **SRC_LAYOUT,
    "pyproject.toml": '[project]\nname = "pkg"\nversion = "0"\n\n'
    '[tool.pytest]\npythonpath = ["src"]\ntestpaths = ["tests"]\n',
}


@pytest.mark.parametrize(
    ("files", "command"),
    [
        (ROOT_LAYOUT, PYTEST),
        (SRC_LAYOUT, PYTEST),
        (SRC_NATIVE_TOML, PYTEST),
        (
            {k: v for k, v in SRC_LAYOUT.items() if k != "pyproject.toml"},
            f"PYTHONPATH=src {PYTEST}",
        ),
        (ROOT_LAYOUT, "pytest -q"),
    ],
    ids=["root-layout", "src-layout", "src-layout-native-toml", "pythonpath-env", "bare-pytest"],
)
def test_legitimate_layouts_still_import(
    tmp_path: Path, files: dict[str, str], command: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    repo = make_repo(tmp_path / "r", files)
    write(repo, {"tests/test_more.py": "def test_more():\n    assert True\n"})
    gate = run_tests(repo, command=command)
    assert gate.status == "passed", gate
    assert gate.data["tests"] == 2 and gate.data["base_tests"] == 1


SKIPS = {
    "pytestmark": "import pytest\n\npytestmark = pytest.mark.skip\n",
    "add_marker": "import pytest\n\n\n@pytest.fixture(autouse=True)\ndef _s(request):\n"
    "    request.node.add_marker(pytest.mark.skip(reason='x'))\n",
    "add_marker-string": "import pytest\n\n\n@pytest.fixture(autouse=True)\ndef _s(request):\n"
    "    request.node.add_marker('skip')\n",
    "from-pytest-import-mark": "from pytest import mark\n\n\n@mark.skip\ndef test_extra():\n"
    "    pass\n",
    "alias-import": "import pytest as pt\n\n\n@pt.mark.xfail(run=False)\n"
    "def test_extra():\n    pass\n",
    "unittest-skip": "from unittest import skip\n\n\n@skip('later')\ndef test_extra():\n    pass\n",
    "skipTest": "import unittest\n\n\nclass T(unittest.TestCase):\n    def test_x(self):\n"
    "        self.skipTest('later')\n",
    "raise-SkipTest": "import unittest\n\n\ndef test_extra():\n"
    "    raise unittest.SkipTest('later')\n",
    "from-unittest-SkipTest": "from unittest import SkipTest as Later\n\n\ndef test_extra():\n"
    "    raise Later('x')\n",
    "raise-skip-Exception": "import pytest\n\n\ndef test_extra():\n"
    "    raise pytest.skip.Exception('x')\n",
    "pytest.skip-call": "import pytest\n\n\ndef test_extra():\n    pytest.skip('x')\n",
    "importorskip": "import pytest\n\nnp = pytest.importorskip('numpy_not_here')\n",
    "getattr-mark": "import pytest\n\n\n@getattr(pytest.mark, 'skip')\n"
    "def test_extra():\n    pass\n",
    "param-marks": "import pytest\n\n\n@pytest.mark.parametrize('x', [pytest.param(1, "
    "marks=pytest.mark.skip)])\ndef test_extra(x):\n    pass\n",
    "from-_pytest": "from _pytest.outcomes import skip\n\n\ndef test_extra():\n    skip('x')\n",
}


def test_every_spelling_of_a_new_skip_is_found(tmp_path: Path) -> None:
    """One file per spelling, in one change (one gate run: each must be found)."""
    repo = make_repo(tmp_path / "r", {"test_a.py": PASSING})
    files = {f"test_{name.replace('-', '_').replace('.', '_')}.py": s for name, s in SKIPS.items()}
    write(repo, files)
    gate = run_tests(repo)
    assert gate.status == "failed", gate
    flagged = {f.path for f in gate.findings if f.rule == "tests.new-skip-marker"}
    assert flagged == set(files), sorted(set(files) - flagged)
    assert run_tests(repo, allow_new_skips=True).status in ("passed", "warning")


def test_a_skip_the_base_had_is_not_new(tmp_path: Path) -> None:
    skipped = "import pytest\n\n\n@pytest.mark.skip\ndef test_old():\n    pass\n"
    repo = make_repo(tmp_path / "r", {"test_a.py": PASSING + "\n\n" + skipped})
    write(repo, {"test_a.py": skipped + "\n\n" + PASSING + "\n\ndef test_two():\n    pass\n"})
    gate = run_tests(repo)
    assert gate.status == "passed", gate.findings


def test_a_skip_in_a_file_that_does_not_parse_is_found_by_the_fallback(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"test_a.py": PASSING})
    write(repo, {"helpers.py": "import pytest\npytestmark = pytest.mark.skip\ndef broken(:\n"})
    gate = run_tests(repo)
    assert gate.status == "failed"
    assert "tests.unparsable-change" in rules(gate), gate.findings


def test_the_host_run_gets_an_allowlisted_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KARMA_PROBE_CREDENTIAL", "probe-value-1234")
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_" + "x" * 36)
    monkeypatch.setenv("KARMA_PROBE_ALLOWED", "allowed")
    probe = (
        "import os\n\n\ndef test_env():\n"
        "    assert 'KARMA_PROBE_CREDENTIAL' not in os.environ\n"
        "    assert 'GITHUB_TOKEN' not in os.environ\n"
        "    assert os.environ['KARMA_PROBE_ALLOWED'] == 'allowed'\n"
        f"    assert os.environ['HOME'] != {str(Path.home())!r}\n"
    )
    repo = make_repo(tmp_path / "r", {"test_a.py": PASSING})
    write(repo, {"test_env.py": probe})
    config = KarmaConfig.model_validate({"sandbox": {"env_allowlist": ["KARMA_PROBE_ALLOWED"]}})
    gate = run_tests(repo, config)
    assert gate.status == "passed", gate.findings
