"""The tests gate on a mixed repository (`examples/mixed`): once per stack, each run in its
stack's folder and image, judging its own stack's files; real Docker, pytest, node."""

from __future__ import annotations

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
