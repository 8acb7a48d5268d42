"""Shared fixtures: real git repositories, the real Docker engine, and the loopback model server.

A test that needs Docker is marked `docker`; without an engine it skips on a developer's
machine but fails when `CI=true`, because CI promises Docker.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from karma.testing.repos import init_repo

IN_CI = os.environ.get("CI", "").lower() == "true"
BASE_IMAGE = os.environ.get("KARMA_BASE_IMAGE", "karma/base:bookworm")


def _docker_problem() -> str | None:
    try:
        import docker

        client = docker.from_env(timeout=10)
        client.ping()
        client.images.get(BASE_IMAGE)
        client.close()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def unavailable(message: str) -> None:
    """Skip on a developer's machine; fail under `CI=true`, where everything is promised."""
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session", autouse=True)
def no_user_config(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The developer's own `~/.config/karma/config.toml` (which `karma setup` may write)
    is a trusted layer: tests must not read it, so each session gets an empty one."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("xdg-config")))
        patch.delenv("KARMA_CONFIG", raising=False)
        patch.delenv("KARMA_TRUST_REPO_CONFIG", raising=False)
        # In GitHub Actions a run end is commented on the issue or pull request: a test
        # run there must never post for real (the tests bring their own stand-in API).
        for name in ("GITHUB_TOKEN", "GH_TOKEN", "GITHUB_EVENT_PATH"):
            patch.delenv(name, raising=False)
        yield


@pytest.fixture(scope="session")
def docker_engine() -> str:
    """The base image name, once the engine and the image are known to be there."""
    problem = _docker_problem()
    if problem:
        message = f"Docker engine or {BASE_IMAGE} unavailable ({problem}); run `karma setup`"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return BASE_IMAGE


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("docker") is not None and "docker_engine" not in getattr(
            item, "fixturenames", ()
        ):
            item.fixturenames.append("docker_engine")  # type: ignore[attr-defined]


@pytest.fixture
def git_repo(tmp_path: Path) -> Iterator[Path]:
    """A real git repository with one commit, its own identity, and nothing else."""
    yield init_repo(tmp_path / "repo")


# -- the loopback model server (owned by the models helper) --------------------------------


@pytest.fixture
def model_server() -> Iterator[object]:
    """A started `karma.testing.model_server.ModelServer` (no script: replies "ok");
    set one with `model_server.set_script(...)`."""
    from karma.testing.model_server import ModelServer

    with ModelServer() as server:
        yield server
