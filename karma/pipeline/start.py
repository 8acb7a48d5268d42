"""A build's start: a new run (context, plan, routing, forecast, budget) or a resumed one
(what is integrated stays done, half-done work is salvaged), under the repository's build
lock, with the `Build` its tasks share made and connected to where its attempts run.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock, Timeout

from karma.config import KarmaConfig
from karma.context import gather_context
from karma.errors import KarmaError, UsageError, WorkspaceError
from karma.events import EventBus
from karma.executor.remote import open_executor
from karma.forecast import BudgetTracker, check_budget, routed_plan
from karma.heal import Healer
from karma.home import DataRoots
from karma.ids import RunId, TaskId
from karma.layout import StackLayout, base_layout
from karma.models.interface import ModelClient
from karma.models.recorded import RecordingModel
from karma.pipeline.build import Build
from karma.pipeline.recorder import RunRecorder
from karma.plan import Plan, parse_plan, strip_derived
from karma.planner import make_plan, plan_from_file
from karma.recipes import load_failure_patterns
from karma.routed import RoutedPlan
from karma.sandbox import get_sandbox
from karma.sandbox.images import ensure_image
from karma.sandbox.interface import SandboxBackend
from karma.scheduler import alongside
from karma.store import Store
from karma.testcommand import for_tasks
from karma.workspace import Workspace


@dataclass(frozen=True)
class BuildEnv:
    """What every stage of a build works with."""

    workspace: Workspace
    config: KarmaConfig
    store: Store
    bus: EventBus
    models: Callable[[str], ModelClient]
    """`provider:model` -> client (a replay answers from the record)."""
    backend: SandboxBackend | None = None
    """None: Docker, from the config."""
    image: str | None = None
    """The image the attempts run in; None: the stack's, built when missing (a test that
    passes a backend which runs nothing passes the name of its image too)."""
    data: DataRoots | None = None
    """Where recipes and gate suites come from; None: the user's checkout's `.karma/`, as
    the build starts (never a worktree or the build branch, which the model writes)."""

    @property
    def roots(self) -> DataRoots:
        return self.data or DataRoots.of_checkout(self.workspace.root)


def default_model_factory(config: KarmaConfig) -> Callable[[str], ModelClient]:
    from karma.models import get_model

    return lambda name: get_model(name, config)


@contextmanager
def build_lock(state_dir: Path, bus: EventBus) -> Iterator[None]:
    """One build per repository; a lock left by a dead process is taken over, with a log."""
    state_dir.mkdir(parents=True, exist_ok=True)
    owner = state_dir / "build.pid"
    lock = FileLock(str(state_dir / "build.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        pid = owner.read_text().strip() if owner.exists() else "?"
        raise UsageError(
            f"another karma build (pid {pid}) is running on this repository",
            tip="wait for it, or stop it; then `karma build --resume <run-id>`",
        ) from None
    try:
        if owner.exists() and (stale := owner.read_text().strip()) and not _alive(stale):
            bus.emit("log", "-", message=f"took over the lock of dead build process {stale}")
        owner.write_text(str(os.getpid()))
        yield
    finally:
        owner.unlink(missing_ok=True)
        lock.release()


def _alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def _layout(env: BuildEnv, base: str) -> StackLayout:
    """The stacks the base commit places (git objects, never the tree a model writes)."""
    layout = base_layout(env.workspace.git, base, env.roots)
    if not layout.placed:
        raise UsageError(f"{env.workspace.root}: no known stack (see recipes/stacks/)")
    return layout


def _prepare(env: BuildEnv, base: str, layout: StackLayout) -> StackLayout:
    """Each placed stack with its test command as the base commit defines it (tox, nox,
    pytest config, unittest, a package.json script, in its folder) and its image (built
    when no cached one exists); for a new run this runs while the planner thinks."""
    workspace, data = env.workspace, env.roots
    # No check runs twice in a task: not one the base's own test script does itself.
    stacks = [for_tasks(workspace.root, base, p.stack, folder=p.label) for p in layout.placed]
    layout = layout.with_stacks(stacks)
    workspace.ignore_generated(list(dict.fromkeys(g for s in stacks for g in s.generated)))
    images = [
        env.image
        or ensure_image(p.stack.name, workspace.root, env.config, data=data, folder=p.folder)
        for p in layout.placed
    ]
    return layout.with_images(images)


def _make(env: BuildEnv, run_id: RunId, request: str, routed: RoutedPlan, base: str,
          context_text: str, layout: StackLayout) -> Build:  # fmt: skip
    workspace, config, data = env.workspace, env.config, env.roots
    b = Build(
        run_id=run_id, request=request, config=config, store=env.store, bus=env.bus,
        workspace=workspace, branch=f"karma/{run_id}", base_commit=base, routed=routed,
        layout=layout, backend=env.backend or get_sandbox(config),
        healer=Healer(env.store, config, load_failure_patterns(data), run_id=run_id),
        budget=BudgetTracker(config.budget.max_cost_usd), model_factory=env.models,
        context_text=context_text, data=data,
    )  # fmt: skip
    b.warm_up()
    b.remote = open_executor(config.executor, run_id, env.bus)
    if b.remote is not None:
        b.remote.warm_up(tuple(sorted({r.model for r in routed.routing.values()})), config)
    return b


def start(
    env: BuildEnv, run_id: RunId, request: str, *, plan_file: Path | None = None,
    base: str | None = None,
) -> Build:  # fmt: skip
    """A new run: context, plan (the planner's or the user's), routing, forecast, budget."""
    workspace, config, store, bus = env.workspace, env.config, env.store, env.bus
    base = workspace.rev(base) if base else workspace.head()
    if base is None:
        raise UsageError("the base commit to build from does not exist")
    layout = _layout(env, base)
    context = gather_context(workspace.root, roots=env.roots, layout=layout)
    store.create_run(
        run_id,
        request,
        workspace.root,
        base_commit=base,
        pid=os.getpid(),
        branch=f"karma/{run_id}",
        config_json=config.model_dump_json(),
    )
    bus.emit("run_started", run_id, request=request, base=base)

    def planned() -> tuple[Plan, float]:
        if plan_file is not None:
            return plan_from_file(plan_file, request=request, repo=workspace.root), 0.0
        planner = RecordingModel(env.models(config.models.planner_model()), store, run_id)
        outcome = make_plan(request, context, planner, repo=workspace.root)
        return outcome.plan, outcome.cost_usd

    # The sandbox image is made ready (checked, or built) while the planner thinks.
    prepared, (plan, planner_cost) = alongside(lambda: _prepare(env, base, layout), planned)
    routed = routed_plan(plan, config, store.task_history())
    store.update_run(run_id, plan_json=json.dumps(routed.contract()), cost_usd=planner_cost)
    record = RunRecorder(store, bus, run_id)
    for task in plan.tasks:
        record.task_planned(task, routed.routing[task.id])
    bus.emit(
        "plan_ready",
        run_id,
        tasks=list(plan.order),
        critical_path=list(routed.critical_path),
        cost_usd=routed.estimated_cost_usd,
        plan=[  # what the terminal shows before work starts
            {
                "id": task.id,
                "title": task.title,
                "deps": list(task.deps),
                "tier": routed.routing[task.id].tier,
                "model": routed.routing[task.id].model,
                "cost_usd": round(routed.costs[task.id], 6),
            }
            for task in (plan.by_id[tid] for tid in plan.order)
        ],
    )
    try:
        check_budget(routed, config.budget.max_cost_usd)
    except KarmaError:
        store.update_run(run_id, status="budget_exceeded", reason="forecast over budget")
        raise
    workspace.create_branch(f"karma/{run_id}", base)
    b = _make(env, run_id, request, routed, base, context.render(), prepared)
    b.budget.spend(planner_cost)
    return b


def resume(env: BuildEnv, run_id: RunId) -> Build:
    """Pick a run up where it stopped: integrated tasks stay done, half-done work is salvaged."""
    workspace, config, store, bus = env.workspace, env.config, env.store, env.bus
    row = store.run(run_id)
    if row is None or not row.plan_json or not row.branch or not row.base_commit:
        raise UsageError(
            f"no resumable run {run_id!r} in {store.path}", tip="`karma runs` lists the runs"
        )
    branch, base = row.branch, row.base_commit
    if workspace.rev(branch) is None:
        raise KarmaError(f"the build branch {branch} of run {run_id} is gone; it cannot resume")
    recorded_request, body = strip_derived(json.loads(row.plan_json))
    plan = parse_plan(body, request=recorded_request or row.request, repo=workspace.root)
    routed = routed_plan(plan, config, store.task_history())
    # A commit on the build branch is the truth about integration, even if the process
    # died before it could write the store.
    for sha, trailers in workspace.log_trailers(branch, base):
        if trailers.get("Karma-Run") == run_id and (merged := trailers.get("Karma-Task")):
            store.upsert_task(run_id, TaskId(merged), status="succeeded", commit_sha=sha)
    for attempt in store.attempts(run_id):
        if attempt.status == "running":
            store.update_attempt(attempt.id, status="abandoned", summary="process died")
    for task in store.tasks(run_id):
        if task.status != "succeeded":
            store.upsert_task(run_id, task.id, status="pending", reason=None, finished_at=None)
    _salvage(workspace, run_id)
    store.update_run(run_id, status="running", pid=os.getpid(), finished_at=None)
    bus.emit("run_started", run_id, request=row.request, base=base, resumed=True)
    layout = _layout(env, base)
    b = _make(
        env,
        run_id,
        row.request,
        routed,
        base,
        gather_context(workspace.root, roots=env.roots, layout=layout).render(),
        _prepare(env, base, layout),
    )
    b.backend.reap_run(run_id)
    b.budget.spend(float(row.cost_usd or 0.0))
    return b


def _salvage(workspace: Workspace, run_id: RunId) -> None:
    """Keep each half-done attempt's work on a salvage branch and remove its worktree."""
    for path in sorted((workspace.worktrees_dir / run_id).glob("*")):
        worktree = workspace.open_worktree(path)
        try:
            if worktree is not None and workspace.changed_files(worktree):
                work = workspace.commit(worktree, "salvage: interrupted attempt",
                                        {"Karma-Run": run_id})  # fmt: skip
                workspace.create_branch(f"karma-salvage/{run_id}/{path.name}",
                                        work or worktree.base)  # fmt: skip
        except WorkspaceError:
            continue  # refused (a nested repository): the tree stays on disk, untouched
        workspace.remove_worktree(path)
    workspace.prune()
    for branch in workspace.branches(f"karma-work/{run_id}/*"):
        name = branch.rsplit("/", 1)[-1]
        workspace.rename_branch(branch, f"karma-salvage/{run_id}/{name}")
