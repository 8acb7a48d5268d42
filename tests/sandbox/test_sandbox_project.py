"""The project under test installed in a real sandbox: offline, no deps, on the scratch tmpfs.

Real Docker, a stack image built from a fixture project (hatchling + hatch-vcs, `src/`
layout), `/opt/venv` read-only and no network, as every sandbox is.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from karma.config import KarmaConfig
from karma.heal.remediation import reinstall_dependencies
from karma.sandbox import FIXED_ENV, spec_from_config
from karma.sandbox.docker import DockerBackend, DockerSandbox
from karma.sandbox.images import ensure_image
from karma.sandbox.project import BOOT, PREFIX, install_project
from tests.engine.test_real_projects import hatch_vcs_project

pytestmark = pytest.mark.docker

IMPORT = (
    "python -c 'import calc, importlib.metadata as m; print(calc.__version__, m.version(\"calc\"))'"
)


@pytest.fixture
def box(docker_engine: str, tmp_path: Path) -> Iterator[DockerSandbox]:
    repo = tmp_path / "calc"
    hatch_vcs_project(repo)
    config = KarmaConfig(sandbox={"base_image": docker_engine})
    tag = ensure_image("python", repo, config)
    sandbox = DockerBackend().start(
        spec_from_config(config, image=tag, workspace=repo, run_id="test-project", task_id="t1")
    )
    try:
        yield sandbox
    finally:
        sandbox.close()


def test_boot_folder_is_on_the_sandbox_path() -> None:
    assert FIXED_ENV["PYTHONPATH"] == BOOT


def test_a_src_layout_imports_with_its_metadata_once_installed(box: DockerSandbox) -> None:
    assert not box.exec(IMPORT, timeout_s=60).ok  # not importable before
    started = time.monotonic()
    outcome = install_project(box)
    took = time.monotonic() - started
    assert outcome.ok and outcome.result is not None, outcome.result
    assert took < 15, took  # once per sandbox; about a second on an idle machine
    found = box.exec(IMPORT, timeout_s=60)
    assert found.ok and found.output.split() == ["0.0.0", "0.0.0"], found.output
    # what `python -I` (the tests gate) is given: the site-packages and the src folder
    assert outcome.paths[0].startswith(f"{PREFIX}/lib/python")
    assert "/workspace/src" in outcome.paths
    pythonpath = " ".join([*outcome.paths, "/workspace"])
    isolated = box.exec(
        f"python -I -B -m pytest -q -p no:cacheprovider -o 'pythonpath={pythonpath}'",
        timeout_s=120,
    )
    assert isolated.ok and "2 passed" in isolated.output, isolated.output
    # /opt/venv is untouched (read-only): the install lives on the scratch tmpfs
    assert box.exec("test -w /opt/venv/lib", timeout_s=30).exit_code != 0


def test_reinstall_dependencies_works_offline_from_the_image(box: DockerSandbox) -> None:
    assert install_project(box).ok
    assert box.exec(f"rm -rf {PREFIX}", timeout_s=30).ok
    assert not box.exec(IMPORT, timeout_s=60).ok
    fix = reinstall_dependencies(box, timeout_s=300)
    assert fix.ok, fix.result
    assert "--no-index" in fix.detail and "succeeded" in fix.detail
    assert box.exec(IMPORT, timeout_s=60).ok


def test_a_broken_build_is_a_failed_install_not_a_crash(box: DockerSandbox) -> None:
    broken = "sed -i 's/hatchling.build/no_such_backend.build/' pyproject.toml"
    assert box.exec(broken, timeout_s=30).ok
    outcome = install_project(box)
    assert not outcome.ok and outcome.result is not None
    assert "no_such_backend" in outcome.result.output
    assert "failed" in outcome.detail


def test_nothing_to_install_without_a_build_system(box: DockerSandbox) -> None:
    assert box.exec("rm pyproject.toml", timeout_s=30).ok
    outcome = install_project(box)
    assert outcome.ok and outcome.result is None
    assert reinstall_dependencies(box).result is None
