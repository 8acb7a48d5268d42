"""The coordinator's side of a remote attempt: send the job, record the report, verify.

`remote_work` makes the attempt's job (its brief, routed model, treatment, limits and
the build branch's tip, with a bundle of what the workers lack since the base commit),
hands it to the build's `RemoteAttempts` (the Dask executor), writes the worker's record
of the attempt into the run store, and takes the returned commit into the user's
repository only after `karma.transfer.accept_attempt` has verified it: one commit whose
parent is the tip that was sent, paths inside the tree, no gitlink, size limits. A
worker lost mid-attempt is recorded as an infrastructure failure of that attempt; Dask
has already run it again on another worker.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from karma.conversation import Brief
from karma.executor.unit import WorkEnd, WorkLimits
from karma.executor.worker import AttemptJob, AttemptReport, BuildShare
from karma.hostgit import HostGit
from karma.ids import TaskId
from karma.models.recorded import next_seq
from karma.sandbox.images import read_inputs
from karma.transfer import accept_attempt, pack

if TYPE_CHECKING:
    from karma.config import ExecutorConfig, KarmaConfig
    from karma.events import EventBus
    from karma.heal.treatment import Treatment
    from karma.pipeline.build import Build
    from karma.plan import Task


class RemoteAttempts(Protocol):
    """Where a build's attempts run when not in this process (`karma.executor.dask`)."""

    def run(self, job: AttemptJob, share: Callable[[], BuildShare]) -> AttemptReport:
        """Run `job` on some worker; `share` is called once per build, on first use."""
        ...

    def warm_up(self, models: tuple[str, ...], config: KarmaConfig) -> None:
        """Every worker makes `models`' clients from its own environment, before any task."""
        ...

    def lost(self, job: AttemptJob) -> list[tuple[str, str]]:
        """(worker, docker_host) of each worker that started `job` and was lost."""
        ...

    def close(self) -> None: ...


def open_executor(config: ExecutorConfig, run_id: str, bus: EventBus) -> RemoteAttempts | None:
    """Where the build's attempts run: None for here (`local`), else the connected
    cluster, whose workers' news reaches `bus` as it happens. The caller closes it."""
    if config.kind == "local":
        return None
    from karma.executor.dask import DaskAttempts

    assert config.address is not None  # the config says so
    return DaskAttempts(config.address, run_id, relay(bus, run_id),
                        timeout_s=config.connect_timeout_s)  # fmt: skip


def relay(bus: EventBus, run_id: str) -> Callable[[dict[str, Any]], None]:
    """A worker's message as the event the local runner emits for the same thing; any
    other message is not relayed (a worker speaks only of its own attempt)."""

    def heard(message: dict[str, Any]) -> None:
        task = str(message.get("task_id") or "")[:200] or None
        kind = message.get("kind")
        if kind == "tool_called":
            bus.emit("tool_called", run_id, task, tool=str(message.get("tool"))[:64],
                     error=bool(message.get("error")))  # fmt: skip
        elif kind == "attempt_started":
            bus.emit("log", run_id, task, message=(
                f"attempt {message.get('attempt')} started on worker {message.get('worker_name')} "
                f"({message.get('docker_host')})"))  # fmt: skip

    return heard


def remote_work(build: Build, task: Task, number: int, model_name: str, treatment: Treatment,
                attempt_id: int, brief: Brief,
                trailers: dict[str, str]) -> tuple[WorkEnd, str | None]:  # fmt: skip
    """Run one attempt on the cluster; how its work ended and its verified commit."""
    assert build.remote is not None
    with build.merge_lock:
        tip = build.tip()
    git = build.workspace.git
    job = AttemptJob(
        run_id=build.run_id, task_id=task.id, number=number, title=task.title,
        brief=brief, model=model_name,
        tip=tip,
        delta=None if tip == build.base_commit else _packed(git, tip, since=[build.base_commit]),
        limits=WorkLimits(build.config.sandbox.exec_timeout_s * treatment.timeout_factor,
                          treatment.remedy, select_tests=build.select_tests()),
        memory_factor=treatment.memory_factor,
        trailers=tuple(trailers.items()),
        first_seq=next_seq(build.store, build.run_id, task.id, number),
        folder=build.placed(task.id).label,
    )  # fmt: skip
    report = build.remote.run(job, partial(build_share, build))
    for worker, engine in build.remote.lost(job):
        build.record.attempt_lost(task.id, number, f"infrastructure failure: worker {worker} "
                                  f"({engine}) was lost mid-attempt; Dask ran the attempt again "
                                  f"on {report.worker}")  # fmt: skip
    _record(build, task.id, number, attempt_id, report)
    if report.commit is None or report.bundle is None:
        return report.work, None
    with tempfile.TemporaryDirectory(prefix="karma-back-") as scratch:
        path = Path(scratch) / "attempt.bundle"
        path.write_bytes(report.bundle)
        commit = accept_attempt(git, path, parent=tip)
    return report.work, commit


def _record(build: Build, task_id: TaskId, number: int, attempt_id: int,
            report: AttemptReport) -> None:  # fmt: skip
    """The worker's record of the attempt into the run's record (redacted once more)."""
    build.record.arrived(task_id, number, report.steps, report.calls)
    build.record.attempt_placed(attempt_id, task_id, image=report.image,
                                container_id=report.container_id, worker=report.worker,
                                docker_host=report.docker_host)  # fmt: skip
    build.record.log(f"attempt {number} ran on worker {report.worker} ({report.docker_host})",
                     task_id)  # fmt: skip


def build_share(build: Build) -> BuildShare:
    """What every worker gets once: the trusted config, the stack and its image inputs
    (read from the user's checkout), and the base commit as a bundle."""
    root, data = build.workspace.root, build.data
    primary, *others = build.layout.placed
    return BuildShare(
        config=build.config,
        stack=primary.stack,
        image_inputs=read_inputs(primary.stack.name, root, data, folder=primary.folder),
        base=build.base_commit,
        seed=_packed(build.workspace.git, build.base_commit, since=[]),
        placed=tuple(
            (p.label, p.stack, read_inputs(p.stack.name, root, data, folder=p.folder))
            for p in others
        ),
    )


def _packed(git: HostGit, head: str, *, since: list[str]) -> bytes:
    with tempfile.TemporaryDirectory(prefix="karma-out-") as scratch:
        return pack(git, head, Path(scratch) / "out.bundle", since=since).read_bytes()
