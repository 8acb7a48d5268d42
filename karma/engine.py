"""The pipeline of `karma build`: plan, schedule, heal, gate, record.

This module composes; the work is done elsewhere — the planner and router make and
route the plan, the scheduler runs the DAG, `karma.pipeline` takes each task through its
attempts (`task.py`, `attempt.py`) and judges the integrated branch (`gates.py`). A build
is resumable: everything it has done is in the run record and on the build branch.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

from karma.config import KarmaConfig
from karma.errors import UsageError
from karma.events import EventBus, utcnow
from karma.home import DataRoots
from karma.ids import RunId, TaskId
from karma.models.interface import ModelClient
from karma.pipeline import start
from karma.pipeline.build import Build
from karma.pipeline.gates import run_gates
from karma.pipeline.result import BuildResult, BuildStatus, task_results, write_report
from karma.pipeline.task import run_task
from karma.sandbox.interface import SandboxBackend
from karma.scheduler import Outcome, run_dag
from karma.store import Store
from karma.waiting import human_input, record_waiting, summary
from karma.workspace import Workspace


def new_run_id() -> RunId:
    return RunId(utcnow().strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3))


def build(
    request: str,
    *,
    repo: Path,
    config: KarmaConfig,
    store: Store,
    bus: EventBus,
    plan_file: Path | None = None,
    resume: str | None = None,
    model_factory: Callable[[str], ModelClient] | None = None,
    gates: bool = True,
    base: str | None = None,
    backend: SandboxBackend | None = None,
    image: str | None = None,
    executor: Executor | None = None,
) -> BuildResult:
    """Run a build (or resume one) to its end; the result says how it ended.

    `base` builds from another commit than HEAD (a replay); `backend` replaces the Docker
    backend and `image` the stack's image (the engine-overhead bench passes an instant
    backend and the name of its image); `executor` runs the tasks
    (default: a thread pool of `build.jobs`; a test passes `SynchronousExecutor` for a
    deterministic order).
    """
    workspace = Workspace(repo)
    models = model_factory or start.default_model_factory(config)
    # Decided once, before any model or sandbox ran: recipes and suites come from here.
    data = DataRoots.of_checkout(workspace.root)
    env = start.BuildEnv(workspace, config, store, bus, models, backend, image, data)
    with start.build_lock(workspace.root / ".karma", bus):
        if resume:
            b = start.resume(env, RunId(resume))
            b.human = human_input(store, b.run_id)
        else:
            if not request.strip():
                raise UsageError("the request is empty", tip='karma build "what to build"')
            b = start.start(env, new_run_id(), request, plan_file=plan_file, base=base)
        try:
            outcomes = _schedule(b, executor)
        finally:
            if b.remote is not None:
                b.remote.close()
        gate_rows: list[dict[str, Any]] = []
        verdict: BuildStatus = "succeeded"
        if gates and _all_ok(outcomes):
            # A review's fix task is scheduled like any other: under the budget, its
            # errors made outcomes.
            gate_rows, verdict = run_gates(b, lambda tid: _schedule(b, executor, only=tid)[tid])
        return _finish(b, outcomes, gate_rows, verdict)


def _schedule(
    b: Build, executor: Executor | None, *, only: TaskId | None = None
) -> dict[TaskId, Outcome]:
    """The plan's tasks (or the task `only`) on the scheduler, under the budget."""
    graph = b.plan.graph()
    if only is not None:
        graph = graph.subgraph([only]).copy()
    done = {t.id for t in b.store.tasks(b.run_id) if t.status == "succeeded"}
    done &= set(graph)
    costs = b.routed.costs

    def can_start(task_id: TaskId) -> str | None:
        if b.budget.reserve(task_id, costs[task_id]):
            return None
        b.record.budget_stopped(task_id, "budget would be exceeded")
        return "the budget would be exceeded"

    def run(task_id: TaskId) -> Outcome:
        try:
            return run_task(b, task_id)
        finally:
            b.budget.settle(task_id, 0.0)  # actual spend is charged as it happens

    def skipped(task_id: TaskId, outcome: Outcome) -> None:
        b.record.task_skipped(task_id, outcome.status, outcome.reason)

    weight = {tid: float(r.calibrated_tokens) for tid, r in b.routing.items()}
    return run_dag(
        graph,
        run,
        jobs=b.config.build.jobs,
        executor=executor,
        weight=weight,
        done=done,
        can_start=can_start,
        stop=b.stop,
        on_skip=skipped,
        on_interrupt=b.interrupt,
    )


def _all_ok(outcomes: dict[TaskId, Outcome]) -> bool:
    return all(o.status == "succeeded" for o in outcomes.values())


def _status(
    b: Build, outcomes: dict[TaskId, Outcome], gate_status: BuildStatus
) -> tuple[BuildStatus, str]:
    statuses = {o.status for o in outcomes.values()}
    failing = [f"{t}: {o.reason}" for t, o in outcomes.items() if o.status != "succeeded"]
    if "infrastructure" in statuses:
        return "infrastructure", "; ".join(failing)
    if "interrupted" in statuses:
        return "interrupted", "; ".join(failing)
    if "not_started" in statuses:
        return "budget_exceeded", "; ".join(failing)
    if "escalated" in statuses:
        return "escalated", "; ".join(failing)
    if statuses != {"succeeded"}:
        return "failed", "; ".join(failing)
    return gate_status, ""


def approval_reason(gate_rows: list[dict[str, Any]]) -> str:
    """Why a build needs approval: the critical paths its change touched, and why each."""
    findings = [f for g in gate_rows if g.get("needs_approval") for f in g.get("findings", [])]
    paths = sorted({str(f.get("path") or "") for f in findings} - {""})
    details = "; ".join(str(f.get("message", "")) for f in findings)
    return f"needs approval: the change touches critical paths {', '.join(paths)} ({details})"


def _finish(
    b: Build, outcomes: dict[TaskId, Outcome], gate_rows: list[dict[str, Any]], verdict: BuildStatus
) -> BuildResult:
    status, reason = _status(b, outcomes, verdict)
    if status == "needs_approval" and not reason:
        reason = approval_reason(gate_rows)
    head = b.tip()
    run_row = b.store.run(b.run_id)
    waiting = [summary(row) for row in record_waiting(b, status, gate_rows)]
    b.record.run_finished(status, reason, head=head, branch=b.branch, pending=waiting)
    report = write_report(b)
    if report:
        b.store.update_run(b.run_id, report_path=report)
    return BuildResult(
        run_id=b.run_id,
        status=status,
        branch=b.branch,
        base_commit=b.base_commit,
        head_commit=head,
        cost_usd=float(run_row.cost_usd if run_row else 0.0),
        tasks=task_results(b),
        gates=gate_rows,
        report=report,
        reason=reason,
    )
