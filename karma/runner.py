"""One task of a build, from first attempt to integration or escalation.

Each attempt gets a fresh worktree cut from the build branch, a fresh sandbox and a fresh
conversation on the model its tier names. After `finish`, the stack's checks run in the
sandbox; a task succeeds only if they pass, and only then is it committed and merged.
A failure becomes evidence, is classified, and is treated as the healer decides (the
healer decides, this module applies) until the task succeeds, or goes to a human.
"""

from __future__ import annotations

import json
import shlex
import time
from dataclasses import replace
from typing import TYPE_CHECKING

from karma.agent import Brief, run_agent
from karma.errors import WorkspaceError
from karma.events import EventKind, iso, utcnow
from karma.failpoints import failpoint
from karma.footprint import Footprint
from karma.heal import AttemptRecord, Escalation, Evidence
from karma.heal.evidence import Step
from karma.heal.remediation import (
    quarantine_test,
    regenerate_lockfile,
    reinstall_dependencies,
    rerun_failed_tests,
    rerun_plan,
    unavailable,
)
from karma.models.interface import AuthFailed, SpendLimitReached
from karma.models.recorded import RecordingModel
from karma.plan import Task, TaskId
from karma.sandbox.interface import ExecResult, Sandbox, SandboxError, SandboxUnavailable
from karma.sandbox.project import install_project
from karma.scheduler import Outcome
from karma.tools import Toolbox
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
            return Outcome("interrupted", end.detail)
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
        with build.merge_lock:  # cut from the build branch as it stands now
            start_at = treatment.recheck.branch if treatment.recheck else build.tip()
            worktree = build.workspace.add_worktree(f"{build.run_id}/{name}", branch, start_at)
        footprint = Footprint(worktree.path, build.config.agent.max_worktree_mb)
        sandbox = build.start_sandbox(task.id, worktree.path, treatment.memory_factor)
        build.store.update_attempt(attempt_id, container_id=sandbox.id)
        build.store.upsert_task(build.run_id, task.id, image=sandbox.image, container_id=sandbox.id)
        end = _work(build, task, number, model_name, treatment, worktree, sandbox, attempt_id,
                    footprint)  # fmt: skip
    except SandboxUnavailable as exc:
        build.interrupt()
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
    """The worktree could not be staged (a nested repository, a git failure): the
    attempt fails with the reason, which the next attempt's model is told."""
    detail = f"{exc} (tip: {exc.tip})" if exc.tip else str(exc)
    return _failed(build, Evidence.from_log(detail, step="build", command="git add"), detail)


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
    workdir = build.config.sandbox.workdir
    installed = install_project(sandbox, workdir=workdir, timeout_s=timeout)
    if installed.result is not None and not installed.ok:
        return _failed(
            build, Evidence.from_exec(installed.result, step="install"), installed.detail
        )
    remedy = treatment.remedy
    if remedy is not None and (remedy.regenerate_lockfile or remedy.reinstall_dependencies):
        if remedy.regenerate_lockfile:
            fix = regenerate_lockfile(sandbox, timeout_s=timeout)
        else:
            fix = reinstall_dependencies(sandbox, workdir=workdir, timeout_s=timeout)
        if fix.result is not None and not fix.ok:
            failed = _failed(
                build,
                Evidence.from_exec(fix.result, step="install"),
                f"{fix.action} failed: {fix.detail}",
            )
            return replace(failed, remedy_failed=True)
    toolbox = Toolbox(
        worktree.path,
        lambda cmd, left: sandbox.exec(cmd, timeout_s=min(timeout, left)),
        build.config.agent.output_chars,
        footprint=footprint,
    )
    model = RecordingModel(
        build.model_for(model_name, task.id, number), build.store, build.run_id, task.id, number
    )
    brief = Brief(
        task.id,
        task.title,
        task.description,
        build.request,
        number,
        plan_notes=build.plan_notes(task),
        context=build.context_text,
        hints=treatment.hints,
    )

    def on_step(step: int, tool: str, args: dict[str, object], output: str, error: bool) -> None:
        build.store.add_step(
            run_id=build.run_id,
            task_id=task.id,
            attempt=number,
            step=step,
            tool=tool,
            arguments_json=build.redacted_json(args),
            output=build.redact(output[-4000:]),
            is_error=int(error),
        )
        build.bus.emit("tool_called", build.run_id, task.id, tool=tool, error=error)

    result = run_agent(brief, model, toolbox, build.config.agent, stop=build.stop, on_step=on_step)
    build.charge(task.id, attempt_id, result.usage, result.cost_usd)
    if isinstance(result.error, AuthFailed | SpendLimitReached):
        build.interrupt()  # no task can succeed now: stop the build, keep it resumable
        raise result.error
    if result.status == "interrupted" or build.stop.is_set():
        return AttemptEnd("interrupted", detail=result.detail or "interrupted")
    if result.status != "finished":
        evidence = Evidence.from_log(result.detail, step="agent", command=f"agent {result.status}")
        return _failed(build, evidence, f"agent {result.status}: {result.detail}")
    if oversized := _oversized(build, footprint):
        return oversized
    try:
        changed = build.workspace.changed_files(worktree)
    except WorkspaceError as exc:
        return _staging_failed(build, exc)
    for step, outcome in _checks(build, worktree, sandbox, changed, timeout):
        if not outcome.ok:
            return _failed(
                build,
                Evidence.from_exec(outcome, step=step),
                f"{step} check failed (exit {outcome.exit_code}): {outcome.command}",
            )
    return _integrate(build, task, number, model_name, worktree, result.summary, footprint)


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
        for step, outcome in _checks(build, worktree, sandbox, changed, timeout):
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


def _checks(
    build: Build, worktree: Worktree, sandbox: Sandbox, changed: list[str], timeout: float
) -> list[tuple[Step, ExecResult]]:
    """The stack's checks on what the task changed; stops at the first failure."""
    stack = build.stack
    sources = [p for p in changed if stack.is_source(p) and (worktree.path / p).is_file()]
    tests = [p for p in sources if stack.is_test(p)]
    done: list[tuple[Step, ExecResult]] = []
    for check in stack.checks:
        if check.when == "files" and not sources:
            continue
        if "{tests}" in check.command and not tests:
            command = stack.test_command
        else:
            command = check.command.format(
                files=" ".join(map(shlex.quote, sources)), tests=" ".join(map(shlex.quote, tests))
            )
        outcome = sandbox.exec(command, timeout_s=timeout)
        done.append((check.step, outcome))
        if not outcome.ok:
            break
    return done


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
    trailers = {
        "Karma-Run": build.run_id,
        "Karma-Task": task.id,
        "Karma-Attempt": str(number),
        "Karma-Model": model_name,
    }
    message = build.redact(commit_message(task.title, summary))
    try:
        commit = build.workspace.commit(worktree, message, trailers) or (
            worktree.base if carried else None
        )
    except WorkspaceError as exc:
        return _staging_failed(build, exc)
    if commit is None:
        return AttemptEnd("succeeded", detail="nothing to change")
    failpoint("after_commit")
    body = with_trailers(message, trailers)
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
