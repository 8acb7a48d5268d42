"""`karma build --executor dask://…` end to end: a real two-worker cluster, each worker
with its own Docker engine, the scripted model, real git on both sides."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from karma.executor.cluster import connect
from karma.store import Store
from karma.testing.demo import demo_script, with_latency
from karma.testing.repos import git, init_repo

pytestmark = pytest.mark.docker

KILL_WAIT_S = 120.0


def _dask(address: str) -> str:
    return "dask://" + address.removeprefix("tcp://")


def test_a_build_on_two_engines_makes_the_tree_a_local_build_makes(
    karma_build: Any, demo_repo: Path, dask_cluster: str, engines: tuple[str, str],
    tmp_path: Path,
) -> None:  # fmt: skip
    code, remote = karma_build(None, "--no-gates", "--executor", _dask(dask_cluster))
    assert code == 0, remote
    assert remote["status"] == "succeeded"
    tasks = remote["tasks"]
    assert all(t["status"] == "succeeded" and t["attempts"] == 1 for t in tasks)
    assert {t["docker_host"] for t in tasks} == set(engines), "tasks ran on both engines"
    assert {t["worker"] for t in tasks} == {"w0", "w1"}
    assert all(t["history"][0]["worker"] == t["worker"] for t in tasks)
    # the coordinator's record holds each attempt's steps and model calls
    store = Store(demo_repo / ".karma" / "karma.db")
    try:
        for t in tasks:
            assert store.model_calls(remote["run_id"], t["id"]), t["id"]
            assert store.steps(remote["run_id"], t["id"]), t["id"]
    finally:
        store.close()
    # the report's timeline has a lane per worker and task, grouped by worker
    html = Path(remote["report"]).read_text()
    assert "w0 · " in html and "w1 · " in html
    remote_tree = git(demo_repo, "rev-parse", f"{remote['head_commit']}^{{tree}}")

    git(demo_repo, "checkout", "-q", "-b", "again", remote["base_commit"])
    code, local = karma_build(None, "--no-gates", "--executor", "local")
    assert code == 0, local
    assert {t["worker"] for t in local["tasks"]} == {None}
    assert git(demo_repo, "rev-parse", f"{local['head_commit']}^{{tree}}") == remote_tree


def test_a_mixed_repository_builds_on_the_cluster_each_task_in_its_stacks_image(
    scripted_build: Any, dask_cluster: str, engines: tuple[str, str], tmp_path: Path
) -> None:
    """A Python backend and a Node frontend (`examples/mixed`): each attempt carries its
    own stack's image inputs to the worker, which builds that image on its own engine and
    runs the task's checks in its folder; the branch holds both tasks' files."""
    from tests.engine import test_mixed_project as mixed

    repo = init_repo(tmp_path / "mixed", source=mixed.FIXTURE, message="mixed: initial")
    code, result = scripted_build(repo, mixed.script(), mixed.REQUEST, "--no-gates",
                                  "--executor", _dask(dask_cluster))  # fmt: skip
    assert code == 0, result
    tasks = mixed.tasks_in_two_stacks(result)
    assert all(t["worker"] in ("w0", "w1") and t["docker_host"] in engines for t in tasks.values())
    files = set(git(repo, "ls-tree", "-r", "--name-only", result["branch"]).split())
    assert {"inventory/report.py", "web/src/badge.js", "web/test/badge.test.js"} <= files


def test_a_worker_killed_mid_attempt_is_an_infrastructure_failure_run_again(
    karma_build: Any, demo_repo: Path, dask_cluster: str
) -> None:
    with connect(dask_cluster) as client:
        pids: dict[str, int] = client.run(os.getpid)
        killed: list[str] = []
        watcher = threading.Thread(target=_kill_first_busy, args=(client, pids, killed))
        watcher.start()
        try:
            code, result = karma_build(with_latency(demo_script(), 1.0), "--no-gates",
                                       "--executor", _dask(dask_cluster))  # fmt: skip
        finally:
            watcher.join()
    assert killed, "no attempt was seen running on a worker"
    assert code == 0, result
    assert result["status"] == "succeeded"
    assert all(t["status"] == "succeeded" and t["attempts"] == 1 for t in result["tasks"])
    store = Store(demo_repo / ".karma" / "karma.db")
    try:
        lost = [e for e in store.events(result["run_id"]) if e.kind == "attempt_failed"]
    finally:
        store.close()
    assert len(lost) == 1, lost
    assert '"status": "infra"' in lost[0].data_json
    assert "was lost mid-attempt" in lost[0].data_json


def _kill_first_busy(client: Any, pids: dict[str, int], killed: list[str]) -> None:
    """SIGKILL the first worker seen running an attempt, a moment into it."""
    deadline = time.monotonic() + KILL_WAIT_S
    while time.monotonic() < deadline:
        busy = [a for a, keys in client.processing().items()
                if any(str(k).startswith("karma-attempt-") for k in keys)]  # fmt: skip
        if busy:
            time.sleep(1.5)  # into the attempt: its first model reply takes a second
            os.kill(pids[busy[0]], signal.SIGKILL)
            killed.append(busy[0])
            return
        time.sleep(0.05)


def test_a_worker_without_the_models_key_fails_the_build_before_any_task(
    karma_build: Any, demo_repo: Path, dask_cluster: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for tier in ("small", "medium", "large"):
        monkeypatch.setenv(f"KARMA_MODELS__{tier.upper()}", f"anthropic:claude-{tier}")
    monkeypatch.setenv("KARMA_MODELS__PLANNER", "scripted:planner")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-coordinator-only-0000000000")
    code, result = karma_build(None, "--no-gates", "--executor", _dask(dask_cluster))
    assert code == 3, result
    store = Store(demo_repo / ".karma" / "karma.db")
    try:
        (run,) = store.query("SELECT id FROM runs")
        assert not store.attempts(run["id"]), "no attempt started"
    finally:
        store.close()


def test_a_scheduler_lost_mid_build_stops_it_resumable_and_resume_finishes_locally(
    karma_build: Any, demo_repo: Path, engines: tuple[str, str], tmp_path: Path
) -> None:
    with _one_worker_cluster(tmp_path, engines[0]) as (address, scheduler):
        stopper = threading.Thread(target=_kill_when_busy, args=(address, scheduler))
        stopper.start()
        try:
            code, stopped = karma_build(with_latency(demo_script(), 1.0), "--no-gates",
                                        "--executor", _dask(address))  # fmt: skip
        finally:
            stopper.join()
    assert code == 3, stopped
    assert stopped["status"] == "interrupted"
    store = Store(demo_repo / ".karma" / "karma.db")
    try:
        run = store.run(stopped["run_id"])
    finally:
        store.close()
    assert run is not None and "was lost mid-build" in (run.reason or ""), run
    code, resumed = karma_build(with_latency(demo_script(), 1.0), "--no-gates",
                                "--resume", stopped["run_id"], "--executor", "local")  # fmt: skip
    assert code == 0, resumed
    assert resumed["status"] == "succeeded"
    assert all(t["status"] == "succeeded" for t in resumed["tasks"])


@contextmanager
def _one_worker_cluster(where: Path, engine: str) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A scheduler and one worker as processes of their own, as `dask scheduler` and
    `dask worker` run them on a real cluster: (address, the scheduler's process)."""
    file = where / "scheduler.json"
    dask = [sys.executable, "-m", "dask"]
    quiet = subprocess.DEVNULL
    scheduler = subprocess.Popen([*dask, "scheduler", "--host", "127.0.0.1", "--no-dashboard",
                                  "--scheduler-file", str(file)],
                                 stdout=quiet, stderr=quiet)  # fmt: skip
    worker = subprocess.Popen([*dask, "worker", "--scheduler-file", str(file), "--name", "w0",
                               "--nthreads", "2", "--no-dashboard"],
                              env={**os.environ, "DOCKER_HOST": engine},
                              stdout=quiet, stderr=quiet)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        address = str(json.loads(file.read_text())["address"])
        with connect(address) as client:
            client.wait_for_workers(1, timeout=60)
        yield address, scheduler
    finally:
        for process in (worker, scheduler):
            process.kill()
            process.wait()


def _kill_when_busy(address: str, scheduler: subprocess.Popen[bytes]) -> None:
    """SIGKILL the scheduler a moment into the first attempt."""
    with connect(address) as client:
        deadline = time.monotonic() + KILL_WAIT_S
        while time.monotonic() < deadline and not any(client.processing().values()):
            time.sleep(0.05)
    time.sleep(1.5)
    scheduler.kill()
