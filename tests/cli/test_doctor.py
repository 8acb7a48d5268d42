"""`karma doctor`: a healthy machine, a bad config, Docker down, a missing image, keys, --online."""

from __future__ import annotations

import http.server
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from karma.cli import main

KEY = "sk-ant-test-never-print-7c1e"
_last_report: dict[str, Any] = {}
"""The whole --json report of the last `doctor` call."""


class _Counting(http.server.BaseHTTPRequestHandler):
    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.seen.append(self.path)
        self.send_response(200)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def provider_url() -> Iterator[tuple[str, list[str]]]:
    """A loopback HTTP server standing in for a provider; yields its URL and the paths it saw."""
    seen: ClassVar[list[str]] = []
    handler = type("Handler", (_Counting,), {"seen": seen})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()


@pytest.fixture
def env(
    monkeypatch: pytest.MonkeyPatch, docker_engine: str, provider_url: tuple[str, list[str]]
) -> None:
    """A machine that should be healthy: base image present, a key and a local server."""
    for name in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "ANTHROPIC_BASE_URL", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KARMA_BASE_IMAGE", docker_engine)
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", provider_url[0] + "/v1")


def doctor(
    repo: Path, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, dict[str, Any]]:
    code = main(["-C", str(repo), "doctor", "--json", *args])
    captured = capsys.readouterr()
    assert KEY not in captured.out + captured.err  # a key's value is never shown
    report = json.loads(captured.out)
    assert report["exit_code"] == code
    _last_report.clear()
    _last_report.update(report)
    return code, {c["name"]: c for c in report["checks"]}


@pytest.mark.docker
@pytest.mark.usefixtures("env")
def test_healthy_machine(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                         provider_url: tuple[str, list[str]]) -> None:  # fmt: skip
    code, checks = doctor(tmp_path, capsys)
    assert code == 0, checks
    assert all(c["status"] == "ok" for c in checks.values()), checks
    assert {"config", "docker", "base image", "git", "semgrep", "pip-audit", "provider anthropic",
            "provider openai", "prices"} <= set(checks)  # fmt: skip
    assert provider_url[1] == []  # no --online: no request was made
    assert main(["-C", str(tmp_path), "doctor"]) == 0
    assert "healthy" in capsys.readouterr().out


@pytest.mark.docker
@pytest.mark.usefixtures("env")
def test_online_sends_one_request_per_provider(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], provider_url: tuple[str, list[str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("ANTHROPIC_BASE_URL", provider_url[0])
    code, checks = doctor(tmp_path, capsys, "--online")
    assert code == 0
    assert checks["online anthropic"]["status"] == "ok"
    assert checks["online openai"]["status"] == "ok"
    assert sorted(provider_url[1]) == ["/v1/models", "/v1/models"]


@pytest.mark.docker
@pytest.mark.usefixtures("env")
def test_invalid_config_exits_2_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "karma.toml").write_text("[sandbox]\nmemroy_mb = 512\n")
    code, checks = doctor(tmp_path, capsys)
    assert code == 2
    assert checks["config"]["status"] == "fail"
    assert "sandbox.memroy_mb" in checks["config"]["detail"]


@pytest.mark.docker
@pytest.mark.usefixtures("env")
def test_docker_down_exits_3_with_the_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    code, checks = doctor(tmp_path, capsys)
    assert code == 3
    assert checks["docker"]["status"] == "fail"
    assert "karma setup" in checks["docker"]["fix"]
    assert main(["-C", str(tmp_path), "doctor"]) == 3
    out = capsys.readouterr().out
    assert "Docker engine unreachable" in out and "cannot build" in out


@pytest.mark.docker
@pytest.mark.usefixtures("env")
def test_missing_base_image_exits_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KARMA_BASE_IMAGE", "karma/no-such-base:nope")
    code, checks = doctor(tmp_path, capsys)
    assert code == 3
    assert checks["base image"]["status"] == "fail"
    assert "docker pull karma/no-such-base:nope" in checks["base image"]["fix"]


@pytest.mark.docker
@pytest.mark.usefixtures("env")
def test_missing_key_exits_3_and_says_which(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    code, checks = doctor(tmp_path, capsys)
    assert code == 3
    assert checks["provider anthropic"]["status"] == "fail"
    assert "ANTHROPIC_API_KEY" in checks["provider anthropic"]["fix"]


@pytest.mark.docker
@pytest.mark.usefixtures("env")
def test_unpriced_model_is_a_warning(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "karma.toml").write_text('[models]\nsmall = "anthropic:claude-unknown-9"\n')
    code, checks = doctor(tmp_path, capsys)
    assert code == 0
    assert checks["prices"]["status"] == "warn"
    assert "anthropic:claude-unknown-9" in checks["prices"]["detail"]


@pytest.mark.docker
@pytest.mark.usefixtures("env")
def test_dropped_dependency_lines_are_listed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "requirements.txt").write_text("six\n--extra-index-url https://evil.example/\n")
    code, checks = doctor(tmp_path, capsys)
    assert code == 0
    found = checks["dependencies"]
    assert found["status"] == "warn" and "requirements.txt:2: dropped" in found["detail"]
    (tmp_path / "requirements.txt").unlink()
    (tmp_path / "requirements.txt").symlink_to("/etc/hostname")
    code, checks = doctor(tmp_path, capsys)
    assert (
        checks["dependencies"]["status"] == "warn" and "symlink" in checks["dependencies"]["detail"]
    )


@pytest.mark.docker
@pytest.mark.usefixtures("env")
def test_each_stacks_toolchain_is_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Python's builds on the base image; Node's toolchain image is ready once built, and
    buildable when its recipe (here a KARMA_HOME's edited copy) has no image yet."""
    from karma.home import DataRoots
    from karma.sandbox.docker import DockerBackend
    from karma.sandbox.images import recipe_files
    from karma.sandbox.toolchain import toolchain_image

    api = DockerBackend().client.api
    base_id = str(api.inspect_image(os.environ["KARMA_BASE_IMAGE"])["Id"])
    node = DataRoots.trusted().path("sandboxes", "node")
    tag_id = toolchain_image(api, base_id, "node", recipe_files(node), lambda line: None)
    code, checks = doctor(tmp_path, capsys)
    stacks = {s["name"]: s for s in _last_report["stacks"]}
    assert stacks["python"]["status"] == "ready" and checks["stack python"]["status"] == "ok"
    assert stacks["node"]["status"] == "ready", stacks
    assert api.inspect_image(stacks["node"]["image"])["Id"] == tag_id
    assert set(stacks["node"]) == {"name", "status", "image", "detail"}
    home = tmp_path / "home"
    (home / "sandboxes" / "node" / "toolchain").mkdir(parents=True)
    for name in ("Dockerfile", "toolchain/Dockerfile"):
        (home / "sandboxes" / "node" / name).write_bytes((node / name).read_bytes() + b"# x\n")
    monkeypatch.setenv("KARMA_HOME", str(home))
    code, checks = doctor(tmp_path, capsys)
    stacks = {s["name"]: s for s in _last_report["stacks"]}
    assert stacks["node"]["status"] == "buildable" and checks["stack node"]["status"] == "ok"
    assert code == 0
    # No base image: no stack can be had (a warning each, the base image's check fails).
    monkeypatch.setenv("KARMA_BASE_IMAGE", "karma/no-such-base:nope")
    code, checks = doctor(tmp_path, capsys)
    assert {s["status"] for s in _last_report["stacks"]} == {"unavailable"}
    assert checks["stack node"]["status"] == "warn"
