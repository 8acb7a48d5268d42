"""A Dask cluster as KARMA sees it: connect to a scheduler and survey its workers.

Each worker runs attempts with its own Docker engine (the `DOCKER_HOST` of the worker's
own environment) and its own model keys; nothing of either travels through the
scheduler. The survey runs on every worker and reports, for `karma doctor` and for the
start of a build: the engine it reaches, whether it holds the base image, and which key
variables are set — their names only, never a value.

`distributed` is an optional extra (`pip install 'karma-build[dask]'`), imported only
here and only when a cluster is used.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from karma.errors import EnvironmentProblem, UsageError
from karma.models import BASE_URL_VARS, KEY_VARS

if TYPE_CHECKING:
    from distributed import Client

CONNECT_TIMEOUT_S = 10.0
EXTRA_TIP = "install the extra: pip install 'karma-build[dask]'"


class ClusterUnavailable(EnvironmentProblem):
    """The scheduler cannot be reached, has no workers, or `distributed` is missing."""


@dataclass(frozen=True)
class WorkerReport:
    """What one worker can do, as it sees it from its own environment."""

    address: str
    host: str
    docker_host: str
    engine: str  # the engine's version, or "" when it does not answer
    problem: str  # why the engine or the image is not usable; "" when both are
    keys: tuple[str, ...]  # names of the model key (and base URL) variables that are set

    @property
    def ready(self) -> bool:
        return not self.problem

    def to_json(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "host": self.host,
            "docker_host": self.docker_host,
            "engine": self.engine,
            "ready": self.ready,
            "problem": self.problem,
            "keys": list(self.keys),
        }


def executor_flags(value: str) -> dict[str, str]:
    """`--executor`: `local`, or `dask://HOST:PORT` (also `tcp://` or `tls://`), as the
    config keys it sets."""
    if value == "local":
        return {"executor.kind": "local"}
    scheme, sep, rest = value.partition("://")
    if sep and scheme in ("dask", "tcp", "tls") and rest:
        address = f"{'tcp' if scheme == 'dask' else scheme}://{rest}"
        return {"executor.kind": "dask", "executor.address": address}
    raise UsageError(f"--executor {value!r}: not `local` or `dask://HOST:PORT`")


def docker_host(environ: Mapping[str, str]) -> str:
    """The engine a process with `environ` reaches (docker-py's default when unset)."""
    return environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def survey_here(base_image: str) -> dict[str, Any]:
    """Runs on a worker: its engine, the base image, the key names (a plain dict, so
    that the scheduler never has to unpickle KARMA's own types)."""
    import docker
    from docker.errors import DockerException, ImageNotFound

    engine, problem = "", ""
    try:
        client = docker.from_env(timeout=10)
        try:
            engine = str(client.version().get("Version", "?"))
            client.images.get(base_image)
        finally:
            client.close()
    except ImageNotFound:
        problem = f"the engine has no image {base_image} (run `karma setup` on the worker)"
    except DockerException as exc:
        problem = f"no Docker engine answers at {docker_host(os.environ)}: {exc}"
    variables = (*KEY_VARS.values(), *BASE_URL_VARS.values())
    return {
        "host": socket.gethostname(),
        "docker_host": docker_host(os.environ),
        "engine": engine,
        "problem": problem,
        "keys": sorted(name for name in variables if os.environ.get(name)),
    }


def connect_client(address: str, *, timeout_s: float = CONNECT_TIMEOUT_S) -> Client:
    """A client of the scheduler at `address` (`tcp://host:port`); the caller closes it."""
    try:
        from distributed import Client
    except ImportError as exc:
        raise ClusterUnavailable("the Dask executor needs `distributed`", tip=EXTRA_TIP) from exc
    try:
        return Client(address, timeout=timeout_s, set_as_default=False)  # type: ignore[no-untyped-call]
    except (OSError, TimeoutError) as exc:
        raise ClusterUnavailable(
            f"no Dask scheduler at {address} answers: {exc}",
            tip="start one (`dask scheduler`) or check [executor] address",
        ) from exc


@contextmanager
def connect(address: str, *, timeout_s: float = CONNECT_TIMEOUT_S) -> Iterator[Client]:
    """A client of the scheduler at `address`, closed on exit."""
    client = connect_client(address, timeout_s=timeout_s)
    try:
        yield client
    finally:
        client.close()  # type: ignore[no-untyped-call]


def survey(client: Client, base_image: str) -> tuple[WorkerReport, ...]:
    """Every worker's report, in address order; none at all is a problem of its own."""
    replies: dict[str, dict[str, Any]] = client.run(survey_here, base_image)
    if not replies:
        raise ClusterUnavailable("the Dask scheduler has no workers")
    return tuple(
        WorkerReport(
            address=address,
            host=str(reply["host"]),
            docker_host=str(reply["docker_host"]),
            engine=str(reply["engine"]),
            problem=str(reply["problem"]),
            keys=tuple(reply["keys"]),
        )
        for address, reply in sorted(replies.items())
    )
