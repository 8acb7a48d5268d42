"""Per-task checks on a long suite run the tests the change reaches (`checks.full_suite_max_s`):
a real stack image, a real sandbox, real pytest."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from karma.config import KarmaConfig
from karma.executor.unit import reached_tests, run_checks
from karma.recipes import detect_stack
from karma.sandbox import spec_from_config
from karma.sandbox.docker import DockerBackend
from karma.sandbox.images import ensure_image

pytestmark = pytest.mark.docker

FILES = {
    "pyproject.toml": '[project]\nname = "calc"\nversion = "0"\n',
    "calc/__init__.py": "",
    "calc/add.py": "def add(a, b):\n    return a + b\n",
    "calc/div.py": "def div(a, b):\n    return a / b\n",
    "tests/test_add.py": "from calc.add import add\n\n\ndef test_add():\n    assert add(1, 2)\n",
    # broken before the task: only a run of the whole suite sees it
    "tests/test_div.py": "from calc.div import div\n\n\ndef test_div():\n    assert div(1, 0)\n",
}


def project(root: Path) -> Path:
    for path, text in FILES.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    return root


def test_the_checks_run_the_tests_the_change_reaches(docker_engine: str, tmp_path: Path) -> None:
    repo = project(tmp_path / "calc")
    config = KarmaConfig(sandbox={"base_image": docker_engine})
    stack = detect_stack(repo)
    assert stack is not None
    spec = spec_from_config(config, image=ensure_image("python", repo, config), workspace=repo,
                            run_id="select", task_id="t1")  # fmt: skip
    box = DockerBackend().start(spec)
    try:
        selected = run_checks(stack, repo, box, ["calc/add.py"], 120, select=True)
        assert [(step, r.ok) for step, r in selected] == [("build", True), ("test", True)]
        assert "tests/test_add.py" in selected[-1][1].command
        assert "test_div" not in selected[-1][1].command
        whole = run_checks(stack, repo, box, ["calc/add.py"], 120)
        assert whole[-1][0] == "test" and not whole[-1][1].ok  # the whole suite: test_div fails
    finally:
        box.close()


def test_a_changed_conftest_or_a_change_no_test_reaches(tmp_path: Path) -> None:
    repo = project(tmp_path / "calc")
    (repo / "calc" / "unused.py").write_text("X = 1\n")
    assert reached_tests(repo, ["calc/add.py"]) == ("tests/test_add.py",)
    assert reached_tests(repo, ["calc/unused.py"]) == ()
    (repo / "tests" / "conftest.py").write_text("")
    assert reached_tests(repo, ["tests/conftest.py"]) is None  # any test: the whole suite


def test_the_selection_never_follows_a_symlink_out_of_the_worktree(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "test_secret.py").write_text("from calc.add import add\n")
    repo = project(tmp_path / "calc")
    os.symlink(outside, repo / "tests" / "linked")  # a folder the model linked elsewhere
    os.symlink(outside / "test_secret.py", repo / "tests" / "test_link.py")
    assert reached_tests(repo, ["calc/add.py"]) == ("tests/test_add.py",)
