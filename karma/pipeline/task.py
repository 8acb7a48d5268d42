"""One task of a build, from first attempt to integration or escalation.

Each attempt gets a fresh worktree cut from the build branch, a fresh sandbox and a fresh
conversation on the model its tier names. After `finish`, the stack's checks run in the
sandbox; a task succeeds only if they pass, and only then is it committed and merged.
A failure becomes evidence, is classified, and is treated as the healer decides (the
healer decides, this module applies) until the task succeeds, or goes to a human.
"""

from __future__ import annotations

import time
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING

from karma.executor.cluster import ClusterUnavailable
from karma.executor.remote import remote_work
from karma.footprint import Footprint
from karma.heal import AttemptRecord, Escalation, Evidence
from karma.heal.remediation import unavailable
from karma.heal.treatment import AttemptEnd, Treatment
from karma.ids import TaskId
from karma.models.recorded import RecordingModel
from karma.pipeline.attempt import (
    attempt_trailers,
    brief_of,
    judge,
    merge_attempt,
    run_work,
)
from karma.plan import Task
from karma.sandbox.interface import Sandbox, SandboxError, SandboxUnavailable
from karma.scheduler import Outcome
from karma.waiting import learn_human_hint

if TYPE_CHECKING:
    from karma.pipeline.build import Build
    from karma.workspace import Worktree


def run_task(build: Build, task_id: TaskId) -> Outcome:
    """Scheduler entry point: attempts until success, escalation or the retry limit."""
    task = build.plan.by_id[task_id]
    routing = build.routing[task_id]
    treatment = Treatment(routing.tier, hints=tuple(build.healer.recall(task.files, task.kind)))
    if human := build.human.hints.get(task_id):  # an answered escalation: a human remedy
        treatment = Treatment(routing.tier, hints=(*treatment.hints, f"A human says: {human}"))
    record = build.record
    record.task_started(task_id, tier=routing.tier, model=routing.model)
    records: list[AttemptRecord] = []
    number = build.next_attempt_number(task_id)
    while True:
        started = time.monotonic()
        end = _attempt(build, task, number, treatment)
        previous = records[-1] if records else None
        if human and previous is None and end.status not in {"infra", "interrupted"}:
            learn_human_hint(build, task_id, number, human, end.status == "succeeded")
        if previous is not None and previous.remediation is not None:
            build.healer.record_outcome(
                previous.classification,
                previous.remediation,
                "resolved" if end.status == "succeeded" else "failed",
                task_id=task_id,
                run_id=build.run_id,
                seconds=time.monotonic() - started,
            )
        if end.status == "succeeded":
            record.task_finished(task_id, "succeeded", commit=end.commit)
            return Outcome("succeeded")
        if end.status in {"infra", "interrupted"}:
            record.task_finished(task_id, "interrupted", reason=end.detail)
            return Outcome("infrastructure" if end.status == "infra" else "interrupted",
                           end.detail)  # fmt: skip
        # Recorded above as the remedy failing; what it treated is still the failure.
        treated = end.remedy_failed and previous is not None
        if treated and previous is not None:
            end = replace(end, classification=previous.classification)
        assert end.evidence is not None and end.classification is not None
        if not end.remedy_failed:
            build.healer.observe(end.evidence, end.classification, files=task.files, kind=task.kind)
        record.classified(task_id, number, end.classification, treated=treated)
        stack = build.placed(task_id).stack.name
        decision = build.healer.decide(
            task_id, end.classification, records, unavailable=unavailable(stack)
        )
        remedy = None if isinstance(decision, Escalation) else decision
        attempt = AttemptRecord(number, end.evidence, end.classification,
                                remedy.name if remedy else None, detail=end.detail)  # fmt: skip
        records.append(attempt)
        record.remedy_chosen(task_id, number, attempt.remediation,
                             failure_class=end.classification.failure_class,
                             tier=remedy.tier if remedy else None)  # fmt: skip
        if isinstance(decision, Escalation):
            return _escalate(build, task, records, decision)
        treatment = treatment.after(decision, end.branch, end.evidence)
        number += 1


def _escalate(
    build: Build, task: Task, records: list[AttemptRecord], decision: Escalation
) -> Outcome:
    # The recommended fix is drafted by the strongest model, and recorded.
    drafter = RecordingModel(build.model(build.config.models.large), build.store,
                             build.run_id, task.id, records[-1].number)  # fmt: skip
    report = build.healer.escalation_report(task, records, drafter, reason=decision)
    build.record.task_escalated(task.id, reason=f"{decision.reason}: {decision.detail}",
                                detail=decision.detail, report_md=report.markdown,
                                report=report.data)  # fmt: skip
    return Outcome("escalated", f"{decision.reason}: {decision.detail}")


def _attempt(build: Build, task: Task, number: int, treatment: Treatment) -> AttemptEnd:
    model_name = build.config.models.for_tier(treatment.tier)
    name = f"{task.id}-{number}"
    branch = build.work_branch(name)
    attempt_id = build.record.attempt_started(task.id, number, model=model_name,
                                              tier=treatment.tier, branch=branch)  # fmt: skip
    end = AttemptEnd("interrupted", detail="the run was interrupted")
    sandboxes: list[Sandbox] = []
    worktree: Worktree | None = None
    footprint: Footprint | None = None
    placed = build.placed(task.id)
    try:
        if build.remote is not None and treatment.recheck is None:
            work, commit = remote_work(
                build, task, number, model_name, treatment, attempt_id,
                brief_of(build, task, number, treatment),
                attempt_trailers(build.run_id, task.id, number, model_name),
            )  # fmt: skip
            merge = partial(merge_attempt, build, task, number, model_name, commit, work.summary)
            end = judge(build, task, attempt_id, work, merge)
            return replace(end, branch=None)
        with build.merge_lock:  # cut from the build branch as it stands now
            start_at = treatment.recheck.branch if treatment.recheck else build.tip()
            worktree = build.workspace.add_worktree(f"{build.run_id}/{name}", branch, start_at)
        footprint = Footprint(worktree.path, build.config.agent.max_worktree_mb)
        at = worktree.path

        def start() -> Sandbox:  # while the model thinks of its first reply (do_work)
            box = build.start_sandbox(task.id, at, treatment.memory_factor, image=placed.image)
            sandboxes.append(box)
            build.record.attempt_placed(attempt_id, task.id, image=box.image,
                                        container_id=box.id)  # fmt: skip
            return box

        end = run_work(build, task, number, model_name, treatment, worktree, start,
                       attempt_id, footprint, placed)  # fmt: skip
    except (SandboxUnavailable, ClusterUnavailable) as exc:  # the scheduler stops the run
        end = AttemptEnd("infra", detail=f"infrastructure failure: {exc}")
    except SandboxError as exc:
        if build.stop.is_set():
            end = AttemptEnd("interrupted", detail="the run was interrupted")
        else:
            evidence = Evidence.from_log(str(exc), step="agent", command="sandbox")
            end = AttemptEnd("failed", evidence, build.healer.classify(evidence), detail=str(exc))
    finally:
        for sandbox in sandboxes:
            build.release_sandbox(sandbox)
        if worktree is not None:
            keep = end.status != "succeeded"  # an oversized worktree is never staged
            staged = keep and footprint is not None and footprint.excess() is None
            build.retire_worktree(worktree, keep=keep, stage=staged)
        build.record.attempt_finished(attempt_id, task.id, number, end)
    return replace(end, branch=branch)
