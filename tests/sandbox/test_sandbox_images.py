"""Stack images: the dependency extraction, a real build of a tiny project, the cache, faults."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from karma.config import KarmaConfig
from karma.errors import ExitCode
from karma.home import builtin_dir
from karma.sandbox import spec_from_config
from karma.sandbox.docker import DockerBackend
from karma.sandbox.images import ensure_image
from karma.sandbox.interface import ImageBuildError, ImageMissing

EXTRACTOR = builtin_dir("sandboxes") / "python" / "requirements_of.py"


def requirements_of(folder: Path) -> list[str]:
    done = subprocess.run([sys.executable, str(EXTRACTOR), str(folder)], capture_output=True,
                          text=True, check=True)  # fmt: skip
    return done.stdout.splitlines()


def test_requirements_come_from_files_without_the_project_itself(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("six==1.16.0  # pinned\n-e .\n./local\n\n# c\n")
    (tmp_path / "requirements-dev.txt").write_text("-r requirements.txt\n-r missing.txt\nattrs\n")
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "My_Proj"\ndependencies = ["click>=8"]\n'
        '[project.optional-dependencies]\ntest = ["my-proj[extra]", "pytest-mock"]\n'
        'docs = ["sphinx"]\n'
    )
    assert requirements_of(tmp_path) == [
        "-r requirements.txt", "attrs", "six==1.16.0", "click>=8", "pytest-mock",
    ]  # fmt: skip


def project(root: Path, requirement: str) -> Path:
    root.mkdir()
    (root / "requirements.txt").write_text(f"{requirement}\n")
    (root / "test_it.py").write_text("import six\n\ndef test_six():\n    assert six.PY3\n")
    return root


@pytest.mark.docker
def test_builds_a_stack_image_with_the_dependencies_then_reuses_it(
    docker_engine: str, tmp_path: Path
) -> None:
    config = KarmaConfig(sandbox={"base_image": docker_engine})
    repo = project(tmp_path / "tiny", "six==1.16.0")
    tag = ensure_image("python", repo, config)
    assert tag.startswith("karma/stack-python:")
    built: list[str] = []
    assert ensure_image("python", repo, config, log=built.append) == tag
    assert built == []  # a cache hit: nothing was built

    backend = DockerBackend()
    box = backend.start(spec_from_config(config, image=tag, workspace=repo, run_id="test-image",
                                         task_id="t1"))  # fmt: skip
    try:
        result = box.exec("python -c 'import six; print(six.__version__)' && "
                          "python -m pytest -q -p no:cacheprovider", timeout_s=120)  # fmt: skip
    finally:
        box.close()
    assert result.ok, result.output
    assert result.output.startswith("1.16.0\n")
    assert "1 passed" in result.output


@pytest.mark.docker
def test_changed_dependencies_change_the_tag(docker_engine: str, tmp_path: Path) -> None:
    from karma.sandbox.images import _digest, dependency_files

    repo = project(tmp_path / "p", "six==1.16.0")
    folder = builtin_dir("sandboxes") / "python"
    first = _digest(docker_engine, "id", folder, dependency_files(repo, ("requirements*.txt",)))
    (repo / "requirements.txt").write_text("six==1.15.0\n")
    second = _digest(docker_engine, "id", folder, dependency_files(repo, ("requirements*.txt",)))
    assert first != second


@pytest.mark.docker
def test_a_failed_build_says_why(docker_engine: str, tmp_path: Path) -> None:
    config = KarmaConfig(sandbox={"base_image": docker_engine})
    repo = project(tmp_path / "broken", "this is not a requirement ==!")
    with pytest.raises(ImageBuildError) as caught:
        ensure_image("python", repo, config)
    assert "this is not a requirement" in str(caught.value)  # the build log's tail


@pytest.mark.docker
def test_a_missing_base_image_says_how_to_fix(tmp_path: Path) -> None:
    config = KarmaConfig(sandbox={"base_image": "karma/no-such-base:nope"})
    with pytest.raises(ImageMissing) as caught:
        ensure_image("python", project(tmp_path / "p", "six"), config)
    assert caught.value.exit_code == ExitCode.ENVIRONMENT
    assert caught.value.tip is not None and "KARMA_BASE_IMAGE" in caught.value.tip
