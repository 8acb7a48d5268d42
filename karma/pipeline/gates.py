"""The gates stage of a build: the suite on the integrated branch, and the review loop.

The suite runs on an export of the build branch's head: a plain folder with no `.git`,
so nothing a gate sandbox writes there can point the host's git anywhere; every gate's
git runs on the main repository's git directory. A reviewer asking for changes
with blocking findings turns them into a fix task, run and healed like any other task,
then the suite runs again; at most `build.review_rounds` rounds, then the build is
escalated.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from karma.forecast import routed_plan
from karma.gates.interface import Finding, GateResult, GateSettings
from karma.gates.suite import SuiteResult, load_suite
from karma.ids import TaskId
from karma.models.recorded import RecordingModel
from karma.pipeline.build import Build
from karma.plan import Task
from karma.waiting import approved

if TYPE_CHECKING:
    from karma.pipeline.result import BuildStatus
    from karma.scheduler import Outcome


def run_gates(
    b: Build, run_fix: Callable[[TaskId], Outcome]
) -> tuple[list[dict[str, Any]], BuildStatus]:
    """The suite on the integrated branch; a review asking for changes becomes a fix task,
    run by `run_fix` (the scheduler), at most `build.review_rounds` times. Returns the gate
    rows and the gate verdict."""
    rounds = b.config.build.review_rounds
    for round_no in range(1, rounds + 2):
        suite = _gate_once(b, round_no)
        rows: list[dict[str, Any]] = suite.as_json()["gates"]
        review = suite.result("review")
        if review is None or review.status != "failed" or not review.findings:
            break
        if round_no > rounds:
            return rows, "escalated"
        outcome = run_fix(_add_fix_task(b, round_no, review.findings))
        if outcome.status != "succeeded":
            ended: dict[str, BuildStatus] = {"escalated": "escalated", "interrupted": "interrupted"}
            return rows, ended.get(outcome.status, "failed")
    if suite.status == "failed":
        return rows, "failed"
    if suite.needs_approval and approved(b.workspace, b.human.approvals, b.tip(), rows):
        b.record.log("the change is as a human approved it")
        return rows, "succeeded"
    return rows, "needs_approval" if suite.needs_approval else "succeeded"


def _gate_once(b: Build, round_no: int) -> SuiteResult:
    from karma.gates import gate_tree

    # The reviewer's client is made only for a suite that reviews (a client is an SSL
    # context and a connection pool: 20-45 ms after the last task, for nothing).
    suite = load_suite(b.config.gates.suite, roots=b.data, overrides=b.config.gates.overrides)
    reviewer = None
    if suite.settings("review") is not None:
        model = b.model(b.config.models.reviewer)
        reviewer = RecordingModel(model, b.store, b.run_id, TaskId(f"review-{round_no}"), 1)
    head = b.tip()
    tree = b.workspace.worktrees_dir / b.run_id / f"gates-{round_no}"
    shutil.rmtree(tree, ignore_errors=True)
    tree.mkdir(parents=True)

    def recorded(result: GateResult, blocking: bool) -> None:
        b.record.gate_finished(result, blocking=blocking, round_no=round_no,
                               counts=_counts(result))  # fmt: skip

    def started(settings: GateSettings) -> None:
        b.record.gate_started(settings.name, blocking=settings.blocking, round_no=round_no)

    plan = json.dumps(b.routed.contract(), indent=1) + f"\n\nReview round {round_no}"
    try:
        b.workspace.export(head, tree)
        return gate_tree(
            tree,
            b.base_commit,
            b.config,
            data=b.data,
            stack=b.stack,
            head=head,
            request=b.request,
            plan=plan,
            start_sandbox=b.backend.start,
            sandbox_image=b.image,
            reviewer=reviewer,
            run_id=b.run_id,
            on_result=recorded,
            git_dir=b.workspace.git_dir,
            on_start=started,
            layout=b.layout,
            suite=suite,
        )
    finally:
        shutil.rmtree(tree, ignore_errors=True)


def _counts(result: GateResult) -> dict[str, Any]:
    """The tests gate's counts, for the live view and the report."""
    data = result.data
    if "tests" not in data or not isinstance(data.get("tests"), int):
        return {}
    keys = ("tests", "failures", "errors", "skipped", "base_tests")
    counts = {k: data.get(k) for k in keys}
    counts["passed"] = data["tests"] - sum(int(data.get(k) or 0) for k in keys[1:4])
    return {"counts": counts}


def _add_fix_task(b: Build, round_no: int, findings: Sequence[Finding]) -> TaskId:
    """A task that addresses the reviewer's blocking findings, routed like any other."""
    lines = [f"- [{f.severity}] {f.path}:{f.line}: {f.message}" for f in findings]
    task = Task(
        id=TaskId(f"review_fix_{round_no}"),
        title="Address the review findings",
        description="The reviewer asked for changes:\n" + "\n".join(lines),
        kind="code",
        deps=(),
        files=tuple(sorted({f.path for f in findings if f.path})),
        estimated_tokens=8000,
    )
    plan = replace(
        b.plan, tasks=(*b.plan.tasks, task), generations=(*b.plan.generations, (task.id,))
    )
    routed = routed_plan(plan, b.config, b.store.task_history())
    b.routed = routed
    b.record.task_planned(task, routed.routing[task.id], f"review round {round_no}; ")
    return task.id
