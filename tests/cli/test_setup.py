"""`karma setup`: exit 0 with the base image's name when ready, 3 with a tip when not; fast
and idempotent when everything is there; the user config written once, only for the default."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from karma.base_image import apt_sources, local_image, primary_source
from karma.cli import main
from tests.conftest import unavailable


@pytest.fixture(autouse=True)
def user_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The user-level config lives in the test's folder, never in the real home."""
    monkeypatch.delenv("KARMA_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg" / "karma" / "config.toml"


def setup(repo: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any], str]:
    code = main(["-C", str(repo), "setup", "--json"])
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert result["exit_code"] == code
    return code, result, captured.err


def test_an_engine_that_docker_host_names_is_never_started(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    user_config: Path,
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/closed.sock")
    code, result, err = setup(tmp_path, capsys)
    assert code == 3 and result["ok"] is False
    assert [(s["name"], s["did"]) for s in result["steps"]] == [("docker", "failed")]
    assert "DOCKER_HOST" in result["error"] and "unset DOCKER_HOST" in result["tip"]
    assert "Tip: " in err and "setup: docker: failed" in err
    assert not user_config.exists()


@pytest.mark.docker
def test_ready_machine_is_fast_and_changes_nothing(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    docker_engine: str,
    user_config: Path,
) -> None:
    monkeypatch.setenv("KARMA_BASE_IMAGE", docker_engine)
    started = time.monotonic()
    code, result, _ = setup(tmp_path, capsys)
    assert code == 0 and result["ok"] and result["base_image"] == docker_engine
    assert [(s["name"], s["did"]) for s in result["steps"]] == [
        ("docker", "present"),
        ("base image", "present"),
    ]
    assert time.monotonic() - started < 1.0 and result["seconds"] < 1.0
    assert not user_config.exists()  # the image was configured: nothing to record
    assert main(["-C", str(tmp_path), "setup"]) == 0
    captured = capsys.readouterr()
    assert captured.out == f"{docker_engine}\n"  # for KARMA_BASE_IMAGE=$(karma setup)
    assert "setup: base image: present" in captured.err


@pytest.mark.docker
def test_default_image_missing_uses_and_records_the_local_one(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    docker_engine: str,
    user_config: Path,
) -> None:
    source = primary_source(apt_sources())
    if source is None:
        unavailable("no apt source on this machine")
    local = local_image(source.suite)
    if local != docker_engine:
        unavailable(f"this machine's local base image would be {local}, not {docker_engine}")
    monkeypatch.delenv("KARMA_BASE_IMAGE", raising=False)
    code, result, _ = setup(tmp_path, capsys)
    assert code == 0 and result["base_image"] == local
    steps = [(s["name"], s["did"]) for s in result["steps"]]
    assert steps in (
        [("docker", "present"), ("base image", "present"), ("config", "configured")],
        [("docker", "present"), ("base image", "present")],  # python:3.12-slim is here
    )
    if ("config", "configured") in steps:
        written = user_config.read_text()
        assert written == f'[sandbox]\nbase_image = "{local}"\n'
        code, again, _ = setup(tmp_path, capsys)  # idempotent: nothing is written twice
        assert code == 0 and [s["name"] for s in again["steps"]] == ["docker", "base image"]
        assert user_config.read_text() == written


@pytest.mark.docker
def test_an_image_that_cannot_be_pulled_or_built_exits_3(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    user_config: Path,
) -> None:
    monkeypatch.setenv("KARMA_BASE_IMAGE", "127.0.0.1:9/team/base:1")
    code, result, err = setup(tmp_path, capsys)
    assert code == 3 and "cannot be pulled" in result["error"]
    assert "karma/base:<suite>" in result["tip"] and "Tip:" in err
    assert not user_config.exists()
