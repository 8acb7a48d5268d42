"""Builds of the example project: real git, real Docker sandboxes, the scripted model."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from karma.advisories import serving
from karma.cli import main
from karma.testing.demo import REQUEST, demo_config, demo_script, example_project
from karma.testing.repos import init_repo

BuildFn = Callable[..., tuple[int, dict[str, Any]]]
# The whole PyPA database when a local mirror is beside the clone, else the advisories
# the project ships for its demo (real entries of requests, urllib3, idna, jinja2, pyyaml).
_MIRROR = Path(__file__).resolve().parents[3] / "shared" / "advisories" / "pypa-advisory-database"
ADVISORIES = (
    _MIRROR if _MIRROR.is_dir() else Path(__file__).resolve().parents[2] / "examples" / "advisories"
)


@pytest.fixture(scope="session")
def osv_url() -> Iterator[str]:
    """The offline OSV endpoint the audit gate asks (no vulnerability service is reachable)."""
    if not ADVISORIES.is_dir():
        pytest.fail(f"{ADVISORIES} is missing")
    with serving(ADVISORIES) as server:
        yield server.url


@pytest.fixture
def demo_repo(tmp_path: Path) -> Path:
    return init_repo(tmp_path / "inventory", source=example_project(), message="inventory: initial")


@pytest.fixture
def karma_config(tmp_path: Path) -> Path:
    config = tmp_path / "karma.toml"
    config.write_text(demo_config().read_text())  # its remedies in the table's order
    return config


ScriptedBuild = Callable[..., tuple[int, dict[str, Any]]]
"""(repo, model script, request, *extra flags) -> (exit code, the build's JSON)."""


@pytest.fixture
def scripted_build(
    karma_config: Path,
    tmp_path: Path,
    docker_engine: str,
    osv_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> ScriptedBuild:
    """Run `karma build --json` on a repository with a model script; (exit code, JSON)."""
    monkeypatch.setenv("KARMA_BASE_IMAGE", docker_engine)
    monkeypatch.setenv("KARMA_OSV_URL", osv_url)

    def run(repo: Path, script: dict[str, Any], request: str,
            *extra: str) -> tuple[int, dict[str, Any]]:  # fmt: skip
        path = tmp_path / "script.yaml"
        path.write_text(yaml.safe_dump(script))
        monkeypatch.setenv("KARMA_SCRIPT", str(path))
        capsys.readouterr()
        code = main(["-C", str(repo), "--config", str(karma_config), "build", "--json",
                     *extra, request])  # fmt: skip
        out = capsys.readouterr().out
        return code, json.loads(out) if out.strip() else {}

    return run


@pytest.fixture
def karma_build(demo_repo: Path, scripted_build: ScriptedBuild) -> BuildFn:
    """Run `karma build --json` on the demo repo with a script; (exit code, JSON)."""

    def run(script: dict[str, Any] | None = None, *extra: str) -> tuple[int, dict[str, Any]]:
        return scripted_build(demo_repo, script or demo_script(), REQUEST, *extra)

    return run
