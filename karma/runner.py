"""One task of a build, from first attempt to integration or escalation.

Each attempt gets a fresh worktree cut from the build branch, a fresh sandbox and a fresh
conversation on the model its tier names. After `finish`, the stack's checks run in the
sandbox; a task succeeds only if they pass, and only then is it committed and merged.
A failure becomes evidence, is classified, and is treated as the healer decides (the
healer decides, this module applies) until the task succeeds, or goes to a human.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING

from karma.agent import Brief
from karma.errors import WorkspaceError
from karma.events import EventKind, iso, utcnow
from karma.executor.cluster import ClusterUnavailable
from karma.executor.remote import remote_work
from karma.executor.unit import OnStep, WorkEnd, WorkLimits, do_work, run_checks, staging_failure
from karma.failpoints import failpoint
from karma.footprint import Footprint
from karma.heal import AttemptRecord, Escalation, Evidence
from karma.heal.remediation import quarantine_test, rerun_failed_tests, rerun_plan, unavailable
from karma.models.recorded import RecordingModel
from karma.plan import Task, TaskId
from karma.sandbox.interface import Sandbox, SandboxError, SandboxUnavailable
from karma.scheduler import Outcome
from karma.trailers import commit_message, with_trailers
from karma.treatment import AttemptEnd, Recheck, Treatment
from karma.waiting import learn_human_hint

if TYPE_CHECKING:
    from karma.build import Build
    from karma.workspace import Worktree


def run_task(build: Build, task_id: str) -> Outcome:
    """Scheduler entry point: attempts until success, escalation or the retry limit."""
    task = build.plan.by_id[TaskId(task_id)]
    routing = build.routing[TaskId(task_id)]
    treatment = Treatment(routing.tier, hints=tuple(build.healer.recall(task.files, task.kind)))
    if human := build.human.hints.get(task_id):  # an answered escalation: a human remedy
        treatment = Treatment(routing.tier, hints=(*treatment.hints, f"A human says: {human}"))
    build.bus.emit("task_started", build.run_id, task_id, tier=routing.tier, model=routing.model)
    build.store.upsert_task(build.run_id, task_id, status="running", started_at=iso(utcnow()))
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
            build.finish_task(task_id, "succeeded", commit=end.commit)
            return Outcome("succeeded")
        if end.status in {"infra", "interrupted"}:
            build.finish_task(task_id, "interrupted", reason=end.detail)
            return Outcome("infrastructure" if end.status == "infra" else "interrupted",
                           end.detail)  # fmt: skip
        if end.remedy_failed and previous is not None:
            # Recorded above as the remedy failing; what it treated is still the failure.
            treated = previous.classification
            end = replace(end, classification=treated)
            build.store.update_attempt_by_number(
                build.run_id, task_id, number, failure_class=treated.failure_class,
                pattern_id=treated.pattern_id, signature=treated.signature,
            )  # fmt: skip
        assert end.evidence is not None and end.classification is not None
        if not end.remedy_failed:
            build.healer.observe(end.evidence, end.classification, files=task.files, kind=task.kind)
        build.bus.emit(
            "failure_classified",
            build.run_id,
            task_id,
            attempt=number,
            pattern=end.classification.pattern_id,
            confidence=end.classification.confidence,
            **{"class": end.classification.failure_class},
        )
        decision = build.healer.decide(
            task_id, end.classification, records, unavailable=unavailable(build.stack.name)
        )
        record = AttemptRecord(
            number,
            end.evidence,
            end.classification,
            None if isinstance(decision, Escalation) else decision.name,
            detail=end.detail,
        )
        records.append(record)
        build.store.update_attempt_by_number(
            build.run_id, task_id, number, remediation=record.remediation
        )
        if isinstance(decision, Escalation):
            return _escalate(build, task, records, decision)
        build.bus.emit(
            "remediation_chosen",
            build.run_id,
            task_id,
            attempt=number,
            remediation=decision.name,
            tier=decision.tier,
            **{"class": end.classification.failure_class},
        )
        treatment = treatment.after(decision, end.branch, end.evidence)
        number += 1


def _escalate(
    build: Build, task: Task, records: list[AttemptRecord], decision: Escalation
) -> Outcome:
    drafter = None
    if build.draft_fixes:  # the recommended fix is drafted by the strongest model, recorded
        drafter = RecordingModel(build.model(build.config.models.large), build.store,
                                 build.run_id, task.id, records[-1].number)  # fmt: skip
    report = build.healer.escalation_report(task, records, drafter, reason=decision)
    build.bus.emit(
        "task_escalated",
        build.run_id,
        task.id,
        reason=decision.detail,
        report_md=build.redact(report.markdown),
        report_json=json.loads(build.redacted_json(report.data)),
    )
    build.finish_task(task.id, "escalated", reason=f"{decision.reason}: {decision.detail}")
    return Outcome("escalated", f"{decision.reason}: {decision.detail}")


def _attempt(build: Build, task: Task, number: int, treatment: Treatment) -> AttemptEnd:
    model_name = build.config.models.for_tier(treatment.tier)
    name = f"{task.id}-{number}"
    branch = build.work_branch(name)
    build.bus.emit(
        "attempt_started",
        build.run_id,
        task.id,
        attempt=number,
        model=model_name,
        tier=treatment.tier,
    )
    attempt_id = build.store.add_attempt(
        build.run_id, task.id, number, model=model_name, tier=treatment.tier, branch=branch
    )
    build.store.upsert_task(
        build.run_id, task.id, attempts=number, model=model_name, tier=treatment.tier
    )
    end = AttemptEnd("interrupted", detail="the run was interrupted")
    sandbox: Sandbox | None = None
    worktree: Worktree | None = None
    footprint: Footprint | None = None
    try:
        if build.remote is not None and treatment.recheck is None:
            work, commit = remote_work(
                build, task, number, model_name, treatment, attempt_id,
                brief_of(build, task, number, treatment),
                attempt_trailers(build.run_id, task.id, number, model_name),
            )  # fmt: skip
            merge = partial(_merge, build, task, number, model_name, commit, work.summary)
            end = _judged(build, task, attempt_id, work, merge)
            return replace(end, branch=None)
        with build.merge_lock:  # cut from the build branch as it stands now
            start_at = treatment.recheck.branch if treatment.recheck else build.tip()
            worktree = build.workspace.add_worktree(f"{build.run_id}/{name}", branch, start_at)
        footprint = Footprint(worktree.path, build.config.agent.max_worktree_mb)
        sandbox = build.start_sandbox(task.id, worktree.path, treatment.memory_factor)
        build.store.update_attempt(attempt_id, container_id=sandbox.id)
        build.store.upsert_task(build.run_id, task.id, image=sandbox.image, container_id=sandbox.id)
        end = _work(build, task, number, model_name, treatment, worktree, sandbox, attempt_id,
                    footprint)  # fmt: skip
    except (SandboxUnavailable, ClusterUnavailable) as exc:  # the scheduler stops the run
        end = AttemptEnd("infra", detail=f"infrastructure failure: {exc}")
    except SandboxError as exc:
        if build.stop.is_set():
            end = AttemptEnd("interrupted", detail="the run was interrupted")
        else:
            evidence = Evidence.from_log(str(exc), step="agent", command="sandbox")
            end = AttemptEnd("failed", evidence, build.healer.classify(evidence), detail=str(exc))
    finally:
        if sandbox is not None:
            build.release_sandbox(sandbox)
        if worktree is not None:
            keep = end.status != "succeeded"  # an oversized worktree is never staged
            staged = keep and footprint is not None and footprint.excess() is None
            build.retire_worktree(worktree, keep=keep, stage=staged)
        c = end.classification
        build.store.update_attempt(
            attempt_id,
            status=end.status,
            finished_at=iso(utcnow()),
            summary=build.redact(end.detail),
            evidence_json=build.redacted_json(end.evidence.to_json()) if end.evidence else None,
            failure_class=c.failure_class if c else None,
            pattern_id=c.pattern_id if c else None,
            signature=c.signature if c else None,
        )
        kind: EventKind = "attempt_succeeded" if end.status == "succeeded" else "attempt_failed"
        build.bus.emit(
            kind, build.run_id, task.id, attempt=number, status=end.status, reason=end.detail
        )
    return replace(end, branch=branch)


def _failed(build: Build, evidence: Evidence, detail: str) -> AttemptEnd:
    return AttemptEnd("failed", evidence, build.healer.classify(evidence), detail=detail)


def _staging_failed(build: Build, exc: WorkspaceError) -> AttemptEnd:
    detail, evidence = staging_failure(exc)
    return _failed(build, evidence, detail)


def _work(
    build: Build,
    task: Task,
    number: int,
    model_name: str,
    treatment: Treatment,
    worktree: Worktree,
    sandbox: Sandbox,
    attempt_id: int,
    footprint: Footprint,
) -> AttemptEnd:
    timeout = build.config.sandbox.exec_timeout_s * treatment.timeout_factor
    if treatment.recheck is not None:
        return _recheck(build, task, number, model_name, worktree, sandbox, treatment.recheck,
                        timeout, footprint)  # fmt: skip
    model = RecordingModel(
        build.model_for(model_name, task.id, number), build.store, build.run_id, task.id, number
    )
    work = do_work(
        brief_of(build, task, number, treatment),
        model,
        sandbox,
        worktree.path,
        stage=lambda: build.workspace.changed_files(worktree),
        stack=build.stack,
        config=build.config,
        limits=WorkLimits(timeout, treatment.remedy),
        footprint=footprint,
        stop=build.stop,
        on_step=step_recorder(build, task.id, number),
    )
    finished = partial(_integrate, build, task, number, model_name, worktree, work.summary,
                       footprint)  # fmt: skip
    return _judged(build, task, attempt_id, work, finished)


def _judged(build: Build, task: Task, attempt_id: int, work: WorkEnd,
            finished: Callable[[], AttemptEnd]) -> AttemptEnd:  # fmt: skip
    """The attempt's end from how its work ended, wherever it ran: charged, classified,
    and, when the work finished, integrated by `finished`."""
    if work.status == "remedy_failed":
        assert work.evidence is not None
        return replace(_failed(build, work.evidence, work.detail), remedy_failed=True)
    if work.ran_agent:
        build.charge(task.id, attempt_id, work.usage, work.cost_usd)
    if work.error is not None:
        build.interrupt()  # no task can succeed now: stop the build, keep it resumable
        raise work.error
    if work.status == "interrupted":
        return AttemptEnd("interrupted", detail=work.detail or "interrupted")
    if work.status == "failed":
        assert work.evidence is not None
        return _failed(build, work.evidence, work.detail)
    return finished()


def brief_of(build: Build, task: Task, number: int, treatment: Treatment) -> Brief:
    """What the first message of an attempt tells the model."""
    return Brief(
        task.id,
        task.title,
        task.description,
        build.request,
        number,
        plan_notes=build.plan_notes(task),
        context=build.context_text,
        hints=treatment.hints,
    )


def step_recorder(build: Build, task_id: str, number: int) -> OnStep:
    """Each agent step into the run record (redacted) and onto the bus."""

    def on_step(step: int, tool: str, args: dict[str, object], output: str, error: bool) -> None:
        build.store.add_step(
            run_id=build.run_id,
            task_id=task_id,
            attempt=number,
            step=step,
            tool=tool,
            arguments_json=build.redacted_json(args),
            output=build.redact(output[-4000:]),
            is_error=int(error),
        )
        build.bus.emit("tool_called", build.run_id, task_id, tool=tool, error=error)

    return on_step


def _recheck(
    build: Build,
    task: Task,
    number: int,
    model_name: str,
    worktree: Worktree,
    sandbox: Sandbox,
    recheck: Recheck,
    timeout: float,
    footprint: Footprint,
) -> AttemptEnd:
    """The failed attempt's change again, without the model: its failed tests rerun
    (passing on a rerun marks them flaky), or quarantined and the checks run again."""
    if recheck.quarantine:
        plan = rerun_plan(recheck.output)
        done = [quarantine_test(worktree.path, test, build.run_id) for test in
                (plan.test_ids if plan else ())]  # fmt: skip
        skipped = [q.test_id for q in done if q.applied]
        if not skipped:
            why = "; ".join(f"{q.test_id}: {q.reason}" for q in done if q.reason)
            return _failed(build, Evidence.from_log(recheck.output, step="test"),
                           "no failed test could be quarantined" + (f" ({why})" if why
                                                                    else ""))  # fmt: skip
        build.bus.emit("log", build.run_id, task.id, message="quarantined as flaky, a human "
                       "should look: " + ", ".join(skipped))  # fmt: skip
        try:
            changed = build.workspace.changed_files(worktree)
        except WorkspaceError as exc:
            return _staging_failed(build, exc)
        for step, outcome in run_checks(build.stack, worktree.path, sandbox, changed, timeout):
            if not outcome.ok:
                return _failed(build, Evidence.from_exec(outcome, step=step),
                               f"{step} check failed after quarantine")  # fmt: skip
        return _integrate(
            build,
            task,
            number,
            model_name,
            worktree,
            "quarantined flaky test(s): " + ", ".join(skipped),
            footprint,
            carried=True,
        )
    rerun = rerun_failed_tests(sandbox, recheck.output, reruns=build.config.heal.reruns,
                               timeout_s=timeout)  # fmt: skip
    if rerun.flaky:
        tests = ", ".join(rerun.plan.test_ids if rerun.plan else ())
        return _integrate(build, task, number, model_name, worktree,
                          f"passed on rerun {rerun.passed_on}: flaky test(s) {tests}",
                          footprint, carried=True)  # fmt: skip
    if not rerun.runs:
        return _failed(build, Evidence.from_log(recheck.output, step="test"),
                       "no failed tests to rerun were found")  # fmt: skip
    return _failed(build, Evidence.from_exec(rerun.runs[-1], step="test"), "failed again on rerun")


def _oversized(build: Build, footprint: Footprint) -> AttemptEnd | None:
    """A failed attempt when the worktree grew past its limit: checked before host git
    reads it (status, staging)."""
    excess = footprint.excess()
    if excess is None:
        return None
    return _failed(build, Evidence.from_log(excess, step="agent", command="worktree size"), excess)


def _integrate(
    build: Build,
    task: Task,
    number: int,
    model_name: str,
    worktree: Worktree,
    summary: str,
    footprint: Footprint,
    *,
    carried: bool = False,
) -> AttemptEnd:
    """Commit and merge the attempt's change; `carried`: the change was committed by an
    earlier attempt whose branch this worktree continues."""
    if oversized := _oversized(build, footprint):  # the checks ran code too
        return oversized
    trailers = attempt_trailers(build.run_id, task.id, number, model_name)
    message = build.redact(commit_message(task.title, summary))
    try:
        commit = build.workspace.commit(worktree, message, trailers) or (
            worktree.base if carried else None
        )
    except WorkspaceError as exc:
        return _staging_failed(build, exc)
    return _merge(build, task, number, model_name, commit, summary)


def attempt_trailers(run_id: str, task_id: str, number: int, model_name: str) -> dict[str, str]:
    """The provenance trailers of an attempt's commit."""
    return {
        "Karma-Run": run_id,
        "Karma-Task": task_id,
        "Karma-Attempt": str(number),
        "Karma-Model": model_name,
    }


def _merge(build: Build, task: Task, number: int, model_name: str, commit: str | None,
           summary: str) -> AttemptEnd:  # fmt: skip
    """Merge the attempt's commit into the build branch (one commit per task)."""
    if commit is None:
        return AttemptEnd("succeeded", detail="nothing to change")
    failpoint("after_commit")
    message = build.redact(commit_message(task.title, summary))
    body = with_trailers(message, attempt_trailers(build.run_id, task.id, number, model_name))
    with build.merge_lock:
        try:
            merged = build.workspace.integrate(build.branch, commit, body, tip=build.tip())
            if merged.commit is not None:
                build.moved(merged.commit)
        except WorkspaceError as exc:
            return _failed(
                build, Evidence.from_log(str(exc), step="build", command="git merge"), str(exc)
            )
    if merged.commit is None:
        files = ", ".join(merged.conflicts) or "unknown files"
        build.bus.emit("merge_conflict", build.run_id, task.id, files=list(merged.conflicts))
        evidence = Evidence.from_log(
            f"merge conflict with the build branch in {files}\n{merged.details}",
            step="build",
            command="git merge-tree",
        )
        return AttemptEnd(
            "conflict",
            evidence,
            build.healer.classify(evidence),
            detail=f"merge conflict with the build branch in {files}: "
            "redo the change on top of the build branch as it is now",
        )
    build.bus.emit("task_merged", build.run_id, task.id, commit=merged.commit)
    return AttemptEnd("succeeded", commit=merged.commit, detail=summary)
