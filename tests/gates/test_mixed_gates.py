"""The tests gate on a mixed repository (`examples/mixed`): once per stack, each run in its
stack's folder and image, judging its own stack's files; real Docker, pytest, node."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from karma.config import KarmaConfig
from karma.gates import gate_tree
from karma.home import DataRoots, builtin_dir
from karma.layout import commit_layout
from karma.sandbox.docker import DockerBackend
from karma.sandbox.images import ensure_image
from karma.testing.repos import git, init_repo

pytestmark = pytest.mark.docker

SKIP = '\ntest.skip("later", () => {});\n'
NEW_TEST = """import pytest


def test_one_more():
    assert True


@pytest.mark.skip(reason="later")
def test_later():
    assert False
"""


def test_each_stack_has_its_tests_gate_and_judges_its_own_files(
    docker_engine: str, tmp_path: Path
) -> None:
    repo = init_repo(tmp_path / "mixed", source=builtin_dir("examples") / "mixed")
    base = git(repo, "rev-parse", "HEAD")
    config = KarmaConfig(sandbox={"base_image": docker_engine})
    data = DataRoots.trusted()
    layout = commit_layout(repo, base, data)
    layout = layout.with_images(
        [ensure_image(p.stack.name, repo, config, data=data, folder=p.folder)
         for p in layout.placed]
    )  # fmt: skip
    # The change: a new skip in the frontend's tests; the backend is untouched.
    test = repo / "web" / "test" / "stock.test.js"
    test.write_text(test.read_text() + SKIP)
    result = gate_tree(repo, base, config, data=data, stack=layout.primary.stack,
                       only=("tests", "audit"), start_sandbox=DockerBackend().start,
                       sandbox_image=layout.primary.image, layout=layout)  # fmt: skip
    rows = {g["name"]: g for g in result.as_json()["gates"]}
    assert list(rows) == ["audit", "audit:web", "tests", "tests:web"]
    # No dependency file of either stack changed: each audit passes without a query.
    assert [rows[n]["status"] for n in ("audit", "audit:web")] == ["passed", "passed"]
    backend, frontend = rows["tests"], rows["tests:web"]
    assert (backend["stack"], backend["folder"], backend["status"]) == ("python", ".", "passed")
    assert backend["summary"].startswith("3 tests: 3 passed"), backend
    assert backend["findings"] == []  # the frontend's skip is not the backend's to judge
    assert (frontend["stack"], frontend["folder"], frontend["status"]) == ("node", "web", "failed")
    rules = {f["rule"]: f for f in frontend["findings"]}
    assert "tests.new-skip-marker" in rules, frontend
    assert rules["tests.new-skip-marker"]["path"] == "web/test/stock.test.js"
    assert result.status == "failed"


def test_a_python_stack_in_a_sub_folder_is_tested_there_with_its_own_configuration(
    docker_engine: str, tmp_path: Path
) -> None:
    """No stack at the root: the backend in `api/` (its pytest configuration, pythonpath
    and testpaths relative to `api/`) is the first stack, so its row is `tests`."""
    source = tmp_path / "source"
    shutil.copytree(builtin_dir("examples") / "mixed", source)
    (source / "api").mkdir()
    for name in ("pyproject.toml", "inventory", "tests"):
        (source / name).rename(source / "api" / name)
    repo = init_repo(tmp_path / "monorepo", source=source)
    base = git(repo, "rev-parse", "HEAD")
    config = KarmaConfig(sandbox={"base_image": docker_engine})
    data = DataRoots.trusted()
    layout = commit_layout(repo, base, data)
    assert [(p.label, p.stack.name) for p in layout.placed] == [("api", "python"), ("web", "node")]
    layout = layout.with_images(
        [ensure_image(p.stack.name, repo, config, data=data, folder=p.folder)
         for p in layout.placed]
    )  # fmt: skip
    (repo / "api" / "tests" / "test_more.py").write_text(NEW_TEST)
    result = gate_tree(repo, base, config, data=data, stack=layout.primary.stack,
                       only=("tests",), start_sandbox=DockerBackend().start,
                       sandbox_image=layout.primary.image, layout=layout)  # fmt: skip
    rows = {g["name"]: g for g in result.as_json()["gates"]}
    api = rows["tests"]
    assert (api["stack"], api["folder"]) == ("python", "api")
    assert api["summary"].startswith("5 tests: 4 passed, 0 failed, 0 errors, 1 skipped"), api
    assert "(base collected 3)" in api["summary"], api
    (skip,) = [f for f in api["findings"] if f["rule"] == "tests.new-skip-marker"]
    assert skip["path"] == "api/tests/test_more.py"
    assert rows["tests:web"]["status"] == "passed", rows["tests:web"]
