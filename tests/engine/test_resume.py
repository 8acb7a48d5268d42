"""`kill -9` at the worst moments, then `karma build --resume`: the same tree as an
uninterrupted run, no duplicate commits, no orphaned containers or worktrees."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import docker
import pytest
import yaml

from karma.store import Store
from karma.testing.demo import REQUEST, demo_config, demo_script, example_project
from karma.testing.repos import git, init_repo

pytestmark = pytest.mark.docker


def _karma(
    repo: Path, config: Path, *args: str, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "karma", "-C", str(repo), "--config", str(config), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, docker_engine: str) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("resume")
    script = base / "script.yaml"
    script.write_text(yaml.safe_dump(demo_script()))
    config = base / "karma.toml"
    config.write_text(demo_config().read_text())
    env = {**os.environ, "KARMA_SCRIPT": str(script), "KARMA_BASE_IMAGE": docker_engine}
    env.pop("KARMA_FAILPOINTS", None)
    reference = init_repo(base / "reference", source=example_project())
    done = _karma(reference, config, "build", "--json", "--no-gates", REQUEST, env=env)
    assert done.returncode == 0, done.stderr
    branch = json.loads(done.stdout)["branch"]
    return {
        "base": base,
        "config": config,
        "env": env,
        "tree": git(reference, "rev-parse", f"{branch}^{{tree}}"),
    }


@pytest.mark.parametrize(
    "point", ["after_model_reply:3", "after_file_write:2", "after_commit:1", "during_merge:2"]
)
def test_kill_then_resume_gives_the_same_result(setup: dict[str, Any], point: str) -> None:
    name = point.split(":")[0]
    repo = init_repo(setup["base"] / f"repo-{name}", source=example_project())
    killed = _karma(
        repo,
        setup["config"],
        "build",
        "--json",
        "--no-gates",
        REQUEST,
        env={**setup["env"], "KARMA_FAILPOINTS": point},
    )
    assert killed.returncode == -9, killed.stderr[-2000:]
    store = Store(repo / ".karma" / "karma.db")
    run_id = store.runs()[0].id
    store.close()

    resumed = _karma(
        repo, setup["config"], "build", "--resume", run_id, "--json", "--no-gates", env=setup["env"]
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    result = json.loads(resumed.stdout)
    assert result["status"] == "succeeded" and result["run_id"] == run_id
    assert git(repo, "rev-parse", f"{result['branch']}^{{tree}}") == setup["tree"]
    tasks = git(
        repo,
        "log",
        "--format=%(trailers:key=Karma-Task,valueonly)",
        f"{result['base_commit']}..{result['branch']}",
    ).split()
    assert sorted(tasks) == ["cli", "csv_export", "docs", "low_stock"]  # no duplicates
    assert git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1
    assert git(repo, "branch", "--list", "karma-work/*") == ""
    client = docker.from_env()
    left = client.containers.list(all=True, filters={"label": f"karma.run_id={run_id}"})
    client.close()
    assert left == []


class SocketProxy:
    """A unix-socket pump in front of the Docker engine that can be cut, like a daemon
    that dies: every connection through it is closed at once."""

    def __init__(self, path: Path, target: str = "/var/run/docker.sock") -> None:
        import socket
        import threading

        self.path, self.target = path, target
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(path))
        self.server.listen(64)
        self.conns: list[socket.socket] = []
        self.cut = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import socket
        import threading

        while not self.cut.is_set():
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(self.target)
            self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: Any, dst: Any) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.close()

    def close(self) -> None:
        import socket

        self.cut.set()
        self.server.close()
        for conn in self.conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
                conn.close()
            except OSError:
                pass


def _wait_for(repo: Path, sql: str, proc: subprocess.Popen[str], timeout: float = 120) -> None:
    import time

    db = repo / ".karma" / "karma.db"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"karma ended early: {proc.stderr.read() if proc.stderr else ''}")
        if db.exists():
            store = Store(db)
            try:
                if store.query(sql):
                    return
            finally:
                store.close()
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {sql}")


def _start(repo: Path, setup: dict[str, Any], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "karma",
            "-C",
            str(repo),
            "--config",
            str(setup["config"]),
            "build",
            "--json",
            "--no-gates",
            REQUEST,
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finishes_on_resume(repo: Path, setup: dict[str, Any]) -> None:
    store = Store(repo / ".karma" / "karma.db")
    run_id = store.runs()[0].id
    store.close()
    resumed = _karma(
        repo, setup["config"], "build", "--resume", run_id, "--json", "--no-gates", env=setup["env"]
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    result = json.loads(resumed.stdout)
    assert git(repo, "rev-parse", f"{result['branch']}^{{tree}}") == setup["tree"]


def test_docker_daemon_lost_mid_run_is_an_infrastructure_failure(setup: dict[str, Any]) -> None:
    repo = init_repo(setup["base"] / "repo-daemon", source=example_project())
    proxy = SocketProxy(setup["base"] / "docker-proxy.sock")
    env = {**setup["env"], "DOCKER_HOST": f"unix://{proxy.path}"}
    proc = _start(repo, setup, env)
    try:
        _wait_for(repo, "SELECT 1 FROM steps WHERE tool = 'write_file'", proc)
        proxy.close()
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 3, err[-3000:]
    result = json.loads(out)
    assert result["status"] == "interrupted"
    store = Store(repo / ".karma" / "karma.db")
    attempts = store.attempts(result["run_id"])
    assert any(a.status == "infra" for a in attempts)
    assert not any(a.failure_class for a in attempts)  # not the task's fault
    store.close()
    _finishes_on_resume(repo, setup)


def test_ctrl_c_stops_cleanly_and_resumes(setup: dict[str, Any]) -> None:
    import signal

    repo = init_repo(setup["base"] / "repo-sigint", source=example_project())
    proc = _start(repo, setup, setup["env"])
    try:
        _wait_for(repo, "SELECT 1 FROM steps WHERE tool = 'write_file'", proc)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, err[-3000:]
    result = json.loads(out)
    assert result["status"] == "interrupted"
    client = docker.from_env()
    left = client.containers.list(all=True, filters={"label": f"karma.run_id={result['run_id']}"})
    client.close()
    assert left == []
    _finishes_on_resume(repo, setup)
