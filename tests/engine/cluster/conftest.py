"""A Dask cluster of two worker processes, each with its own Docker engine.

The first engine is the machine's own; the second is a `dockerd` started here with its
own socket, data root and exec root (no bridge, no NAT, like `karma setup` starts one),
loaded with the base image, and stopped at the end of the session. Each worker is a
`Nanny` whose environment names its engine in `DOCKER_HOST`.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from karma.models import BASE_URL_VARS, KEY_VARS
from tests.conftest import unavailable

ENGINE_WAIT_S = 60.0
FIRST_ENGINE = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
NO_KEYS = {name: "" for name in (*KEY_VARS.values(), *BASE_URL_VARS.values())}
"""The workers hold no model key, whatever the environment of the tests."""


def _ping(host: str) -> bool:
    probe = subprocess.run(["docker", "-H", host, "version", "--format", "{{.Server.Version}}"],
                           capture_output=True, check=False)  # fmt: skip
    return probe.returncode == 0


@pytest.fixture(scope="session")
def second_engine(docker_engine: str) -> Iterator[str]:
    """`DOCKER_HOST` of a second engine holding the base image."""
    dockerd = shutil.which("dockerd")
    if dockerd is None or os.geteuid() != 0:
        unavailable("a second Docker engine needs `dockerd` and root")
    root = Path(f"/tmp/karma-engine2-{os.getpid()}")  # a socket path must stay short
    root.mkdir()
    host = f"unix://{root}/docker.sock"
    log = (root / "dockerd.log").open("wb")
    daemon = subprocess.Popen(
        [dockerd, "--bridge=none", "--iptables=false", "--ip-masq=false", "--ip-forward=false",
         "--host", host, "--data-root", f"{root}/data", "--exec-root", f"{root}/exec",
         "--pidfile", f"{root}/docker.pid"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + ENGINE_WAIT_S
        while not _ping(host):
            if daemon.poll() is not None or time.monotonic() > deadline:
                unavailable(f"the second dockerd did not come up: see {root}/dockerd.log")
            time.sleep(0.3)
        save = subprocess.Popen(["docker", "-H", FIRST_ENGINE, "save", docker_engine],
                                stdout=subprocess.PIPE)  # fmt: skip
        subprocess.run(["docker", "-H", host, "load", "-q"], stdin=save.stdout, check=True,
                       capture_output=True)  # fmt: skip
        save.wait()
        yield host
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            daemon.kill()
        log.close()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def engines(second_engine: str) -> tuple[str, str]:
    return (FIRST_ENGINE, second_engine)


@pytest.fixture
def dask_cluster(two_workers: str) -> str:
    """The scheduler address, once both workers are connected: at the cluster's start a
    worker may still be registering, and one a test killed is restarted by its nanny (a
    build started before then would run on one engine only)."""
    from distributed import Client

    with Client(two_workers, timeout=60, set_as_default=False) as client:
        client.wait_for_workers(2, timeout=120)
    return two_workers


@pytest.fixture(scope="session")
def two_workers(engines: tuple[str, str]) -> Iterator[str]:
    """The scheduler address of a cluster of two worker processes, one per engine."""
    try:
        from distributed import Nanny, Scheduler, SpecCluster
    except ImportError:
        unavailable("the Dask tests need `distributed` (pip install -e '.[dev,dask]')")
    workers = {
        f"w{n}": {
            "cls": Nanny,
            "options": {
                "nthreads": 2,
                "env": {"DOCKER_HOST": host, **NO_KEYS},
                "preload": ["karma.executor.worker"],
                "dashboard": False,  # no port 8787 to clash with another cluster
            },
        }
        for n, host in enumerate(engines)
    }
    scheduler = {"cls": Scheduler, "options": {"dashboard_address": None, "host": "127.0.0.1"}}
    cluster = SpecCluster(workers=workers, scheduler=scheduler, silence_logs=False)
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close()
