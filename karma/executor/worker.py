"""The worker's side of a remote attempt: a job in, a verified-on-return commit out.

A Dask worker runs `run_attempt(job, share)`: `share` is what every attempt of the build
has in common (`BuildShare`, scattered to every worker once), `job` this attempt alone.
The worker keeps one git repository per build in its cache (`KARMA_WORKER_CACHE`,
default `~/.cache/karma/worker/<worker>/<run>`), seeded once with the build's base
commit (the share's bundle) and brought to the build branch's tip with the small bundle
each job carries. The attempt runs in a
worktree of that repository, in a sandbox of the worker's own Docker engine (the
`DOCKER_HOST` of its environment), on a model made from the worker's own environment
(its keys never travel). The stack image is built on the worker's engine when missing,
from the recipe and dependency files the coordinator read from the base commit.

What comes back: how the work ended (`WorkEnd`), the commit as a bundle of exactly one
commit on the tip it was sent, and the attempt's record (steps and model calls,
redacted here). The coordinator verifies the bundle before integrating anything.
Failures of the engine or the image are raised as KARMA's own errors; Dask carries them
back and the coordinator treats them as it treats them locally.
"""

from __future__ import annotations

import os
import re
import tempfile
import threading
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any

from karma.config import KarmaConfig
from karma.conversation import Brief
from karma.executor.cluster import docker_host
from karma.executor.unit import WorkEnd, WorkLimits, do_work
from karma.footprint import Footprint
from karma.gates.secrets import redact
from karma.hostgit import HostGit
from karma.models import get_model
from karma.models.recorded import CallRecorder
from karma.recipes import Stack
from karma.sandbox import spec_from_config
from karma.sandbox.images import Inputs, image_for
from karma.sandbox.interface import Sandbox
from karma.trailers import commit_message
from karma.transfer import pack, receive
from karma.workspace import Workspace

CACHE_ENV = "KARMA_WORKER_CACHE"
_repos = threading.Lock()  # one build's repository is seeded and fetched into at a time
_images = threading.Lock()  # one stack image is built at a time on this worker


@dataclass(frozen=True)
class BuildShare:
    """What every attempt of a build shares: sent to each worker once, not with each job."""

    config: KarmaConfig
    """The build's trusted configuration (keys are never in it)."""
    stack: Stack
    image_inputs: Inputs
    """The recipe and dependency files the coordinator read for the stack image."""
    base: str
    """The build's base commit."""
    seed: bytes
    """A bundle of `base`."""
    placed: tuple[tuple[str, Stack, Inputs], ...] = ()
    """A mixed repository's other stacks (karma/layout.py): folder, stack, image inputs."""

    def stack_in(self, folder: str) -> tuple[Stack, Inputs]:
        """The stack placed in `folder` and its image inputs (the primary's by default)."""
        return next(((s, i) for f, s, i in self.placed if f == folder),
                    (self.stack, self.image_inputs))  # fmt: skip


@dataclass(frozen=True)
class AttemptJob:
    """Everything one attempt needs beyond its build's share, and nothing of the
    coordinator's environment."""

    run_id: str
    task_id: str
    number: int
    title: str
    brief: Brief
    model: str
    tip: str
    """The build branch's head the attempt starts from."""
    delta: bytes | None
    """A bundle of `tip` since `base` (None when the branch has not moved)."""
    limits: WorkLimits
    memory_factor: float
    trailers: tuple[tuple[str, str], ...]
    first_seq: int
    """The `seq` of the attempt's first model call in the run record."""
    folder: str = "."
    """The folder of the task's stack: its image, its checks' working directory."""

    @property
    def key(self) -> str:
        return f"karma-attempt-{self.run_id}-{self.task_id}-{self.number}"


@dataclass(frozen=True)
class StepRow:
    step: int
    tool: str
    arguments: dict[str, object]
    output: str
    is_error: bool


@dataclass(frozen=True)
class AttemptReport:
    """What a worker sends back; all of it already redacted by the worker."""

    work: WorkEnd
    commit: str | None
    bundle: bytes | None
    steps: tuple[StepRow, ...]
    calls: tuple[dict[str, Any], ...]
    worker: str
    docker_host: str
    image: str
    container_id: str


def topic(run_id: str) -> str:
    """The Dask event topic where a build's workers say what they do as they do it."""
    return f"karma-{run_id}"


def dask_setup(worker: Any) -> None:
    """`dask worker --preload karma.executor.worker`: a worker loads what attempts use
    (the model SDKs, docker-py) as it starts, not during a build's first attempt."""
    import anthropic  # noqa: F401
    import openai  # noqa: F401

    import karma.sandbox.docker  # noqa: F401


def warm_here(models: tuple[str, ...], config: KarmaConfig) -> str:
    """Runs on every worker as a build connects: the routed models' clients made from the
    worker's own environment (a worker without a key fails the build before any task
    starts) and the Docker backend loaded and its engine asked, so that no attempt pays
    for either. Returns the worker's name."""
    for name in models:
        get_model(name, config)
    from karma.sandbox.docker import DockerBackend

    DockerBackend().ping()
    return _worker_name()


def run_attempt(job: AttemptJob, share: BuildShare) -> AttemptReport:
    """Runs on a Dask worker: the attempt of `job`, from the tip it names."""
    worker = _worker_name()
    engine = docker_host(os.environ)
    # `worker_name`: Dask sets `worker` of an event to the worker's address
    started = {"kind": "attempt_started", "key": job.key, "task_id": job.task_id,
               "attempt": job.number, "worker_name": worker, "docker_host": engine}  # fmt: skip
    _publish(job.run_id, started)
    from karma.sandbox.docker import DockerBackend

    workspace = _repository(job, share, worker)
    stack, inputs = share.stack_in(job.folder)
    generated = [share.stack, *(s for _, s, _ in share.placed)]
    workspace.ignore_generated(list(dict.fromkeys(g for s in generated for g in s.generated)))
    name = f"{job.task_id}-{job.number}"
    worktree = workspace.add_worktree(name, f"karma-work/{job.run_id}/{name}", job.tip)
    steps: list[StepRow] = []
    calls: list[dict[str, Any]] = []
    backend = DockerBackend()
    try:
        image = _image(backend, share, stack.name, inputs)
        spec = spec_from_config(share.config, image=image, workspace=worktree.path,
                                run_id=job.run_id, task_id=job.task_id)  # fmt: skip
        if job.memory_factor != 1.0:
            spec = replace(spec, memory_mb=int(spec.memory_mb * job.memory_factor))
        sandboxes: list[Sandbox] = []

        def start() -> Sandbox:  # while the model thinks of its first reply (do_work)
            sandboxes.append(backend.start(spec))
            return sandboxes[-1]

        try:
            where = (job.run_id, job.task_id, job.number)
            model = CallRecorder(get_model(job.model, share.config),
                                 lambda **row: calls.append(row), where, job.first_seq)  # fmt: skip

            def on_step(step: int, tool: str, args: dict[str, object], output: str,
                        error: bool) -> None:  # fmt: skip
                steps.append(StepRow(step, tool, args, redact(output[-4000:]), error))
                _publish(job.run_id, {"kind": "tool_called", "task_id": job.task_id,
                                      "tool": tool, "error": error})  # fmt: skip

            work = do_work(
                job.brief, model, start, worktree.path,
                stage=lambda: workspace.staged(worktree), stack=stack,
                folder=PurePosixPath(job.folder), config=share.config, limits=job.limits,
                footprint=Footprint(worktree.path, share.config.agent.max_worktree_mb),
                stop=threading.Event(), on_step=on_step,
            )  # fmt: skip
        finally:
            for sandbox in sandboxes:
                sandbox.close()
        commit, bundle = _commit(job, workspace, worktree, work) if work.status == "finished" \
            else (None, None)  # fmt: skip
    finally:
        workspace.remove_worktree(worktree.path)
    return AttemptReport(work, commit, bundle, tuple(steps),
                         tuple(_redacted(call) for call in calls), worker, engine, image,
                         sandboxes[0].id if sandboxes else "")  # fmt: skip


def _commit(job: AttemptJob, workspace: Workspace, worktree: Any,
            work: WorkEnd) -> tuple[str | None, bytes | None]:  # fmt: skip
    """The staged change as one commit on the tip, packed for the trip back."""
    message = redact(commit_message(job.title, work.summary))
    commit = workspace.commit(worktree, message, dict(job.trailers))
    if commit is None:
        return None, None
    with tempfile.TemporaryDirectory(prefix="karma-out-") as scratch:
        path = pack(workspace.git, commit, Path(scratch) / "attempt.bundle", since=[job.tip])
        return commit, path.read_bytes()


def _repository(job: AttemptJob, share: BuildShare, worker: str) -> Workspace:
    """This worker's repository of the build, holding the job's tip."""
    root = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "karma" / "worker")
    repo = root / worker / job.run_id / "repo"
    with _repos:
        if not (repo / ".git").is_dir():
            repo.mkdir(parents=True, exist_ok=True)
            HostGit(repo / ".git", repo).run("init", "-q")
        git = HostGit(repo / ".git")
        for needed, bundle in ((share.base, share.seed), (job.tip, job.delta)):
            if bundle is not None and not git.ok("cat-file", "-e", f"{needed}^{{commit}}"):
                with tempfile.TemporaryDirectory(prefix="karma-in-") as scratch:
                    path = Path(scratch) / "in.bundle"
                    path.write_bytes(bundle)
                    receive(git, path)
        return Workspace(repo)


def _image(backend: Any, share: BuildShare, stack: str, inputs: Inputs) -> str:
    """The stack image on this worker's engine, built here from the build's inputs if missing."""
    with _images:
        return image_for(stack, inputs, share.config, backend=backend)


def _redacted(call: dict[str, Any]) -> dict[str, Any]:
    return {k: redact(v) if isinstance(v, str) else v for k, v in call.items()}


def _worker_name() -> str:
    try:
        from distributed import get_worker

        name = str(get_worker().name)
    except (ImportError, ValueError):
        name = f"pid-{os.getpid()}"
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


def _publish(run_id: str, message: dict[str, Any]) -> None:
    """Tell the coordinator now (Dask's structured events); outside a worker, nobody."""
    try:
        from distributed import get_worker

        get_worker().log_event(topic(run_id), message)
    except (ImportError, ValueError):
        return
