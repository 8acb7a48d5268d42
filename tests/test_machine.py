"""`karma.machine`: what set-up decides from the machine's facts, and the user config it writes."""

from __future__ import annotations

import tomllib
from dataclasses import replace
from pathlib import Path

import pytest

from karma.errors import ConfigError, EnvironmentProblem
from karma.machine import Host, engine_actions, record_base_image, start_dockerd, survey

UP = Host(engine="20.10.24", root=True, apt=True, dockerd="/usr/sbin/dockerd")
DOWN = Host(engine=None, engine_error="Docker engine unreachable: no socket")


@pytest.mark.parametrize(
    ("host", "actions"),
    [
        (UP, ()),
        (Host(engine="24.0", root=False), ()),  # reachable: nothing to do, root or not
        (Host(engine=None, root=True, apt=True, dockerd="/usr/sbin/dockerd"), ("start",)),
        (Host(engine=None, root=True, apt=True), ("install", "start")),
        (
            Host(engine=None, root=True, apt=True, docker_host="unix:///var/run/docker.sock"),
            ("install", "start"),
        ),
    ],
)
def test_engine_actions(host: Host, actions: tuple[str, ...]) -> None:
    assert engine_actions(host) == actions


@pytest.mark.parametrize(
    ("host", "says"),
    [
        (Host(engine=None, root=False, apt=True), "sudo karma setup"),
        (Host(engine=None, root=False, dockerd="/usr/bin/dockerd"), "sudo karma setup"),
        (Host(engine=None, root=True, apt=False), "docs.docker.com"),  # not Debian/Ubuntu
        # Another engine is named: never start a second dockerd on this machine's data.
        (
            Host(
                engine=None,
                root=True,
                apt=True,
                dockerd="/usr/sbin/dockerd",
                docker_host="tcp://10.0.0.5:2376",
            ),
            "DOCKER_HOST",
        ),
        (
            Host(engine=None, root=True, apt=True, docker_host="unix:///tmp/other.sock"),
            "DOCKER_HOST",
        ),
    ],
)
def test_engine_actions_refuse_with_a_tip(host: Host, says: str) -> None:
    with pytest.raises(EnvironmentProblem) as caught:
        engine_actions(host)
    assert caught.value.exit_code == 3
    assert says in f"{caught.value} {caught.value.tip}"


def test_survey_of_a_closed_socket_chooses_no_start(tmp_path: Path) -> None:
    """The real probe against a socket nobody listens on: unreachable, and as DOCKER_HOST
    names it, `karma setup` refuses rather than starting a dockerd."""
    closed = f"unix://{tmp_path}/closed.sock"
    host = survey({"DOCKER_HOST": closed, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
    assert host.engine is None and "unreachable" in host.engine_error
    assert host.docker_host == closed
    with pytest.raises(EnvironmentProblem, match="names another engine"):
        engine_actions(host)
    as_root = replace(host, docker_host=None, root=True, dockerd=None, apt=True)
    assert engine_actions(as_root) == ("install", "start")


def test_a_dockerd_that_dies_is_reported_with_its_log(tmp_path: Path) -> None:
    fake = tmp_path / "dockerd"
    fake.write_text('#!/bin/sh\necho "failed to start daemon: $*"\nexit 1\n')
    fake.chmod(0o755)
    log = tmp_path / "dockerd.log"
    environ = {"DOCKER_HOST": f"unix://{tmp_path}/closed.sock"}
    with pytest.raises(EnvironmentProblem) as caught:
        start_dockerd(str(fake), log, environ, wait_s=20)
    assert "exit 1" in str(caught.value) and "--bridge=none --iptables=false" in str(caught.value)
    assert caught.value.tip == f"see {log}"


def test_record_base_image_into_a_new_file(tmp_path: Path) -> None:
    path = tmp_path / "cfg" / "karma" / "config.toml"
    assert record_base_image(path, "karma/base:bookworm")
    assert tomllib.loads(path.read_text()) == {"sandbox": {"base_image": "karma/base:bookworm"}}
    assert not record_base_image(path, "karma/base:trixie")  # idempotent: the value is kept
    assert "bookworm" in path.read_text()


def test_record_base_image_keeps_the_users_file(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    text = (
        "# mine\ntrust_repo_config = false\n\n"
        "[sandbox]  # limits\nmemory_mb = 4096\n\n[build]\njobs = 2\n"
    )
    path.write_text(text)
    assert record_base_image(path, "karma/base:bookworm")
    data = tomllib.loads(path.read_text())
    assert data["sandbox"] == {"base_image": "karma/base:bookworm", "memory_mb": 4096}
    assert data["build"] == {"jobs": 2} and path.read_text().startswith("# mine\n")
    other = tmp_path / "other.toml"
    other.write_text("[build]\njobs = 2")  # no final newline
    assert record_base_image(other, "karma/base:bookworm")
    assert tomllib.loads(other.read_text())["sandbox"]["base_image"] == "karma/base:bookworm"


def test_record_base_image_never_touches_a_set_value_or_a_broken_file(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[sandbox]\nbase_image = "python:3.12-slim"\n')
    assert not record_base_image(path, "karma/base:bookworm")
    assert path.read_text() == '[sandbox]\nbase_image = "python:3.12-slim"\n'
    path.write_text("[sandbox\n")
    with pytest.raises(ConfigError, match="malformed TOML"):
        record_base_image(path, "karma/base:bookworm")
    assert path.read_text() == "[sandbox\n"
