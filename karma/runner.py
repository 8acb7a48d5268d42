"""One task of a build, from first attempt to integration or escalation.

Each attempt gets a fresh worktree cut from the build branch, a fresh sandbox and a fresh
conversation on the model its tier names. After `finish`, the stack's checks run in the
sandbox; a task succeeds only if they pass, and only then is it committed and merged.
A failure is turned into evidence, classified, and remediated as the healer decides,
until it succeeds, runs out of retries, or needs a human.
"""

from __future__ import annotations

import shlex
import threading
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from karma.agent import Brief, run_agent
from karma.config import TIERS, Tier
from karma.errors import WorkspaceError
from karma.events import iso, utcnow
from karma.heal import Evidence
from karma.models.recorded import RecordingModel
from karma.sandbox.interface import ExecResult, Sandbox, SandboxSpec, SandboxUnavailable
from karma.scheduler import Outcome
from karma.tools import Toolbox

if TYPE_CHECKING:
    from karma.engine import Build
    from karma.plan import Task
    from karma.workspace import Worktree


@dataclass
class Treatment:
    """What the next attempt changes, as decided by the healer."""

    tier: Tier
    memory_factor: float = 1.0
    timeout_factor: float = 1.0
    hints: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class AttemptEnd:
    status: str
    """succeeded, failed, conflict, infra, interrupted"""
    evidence: Evidence | None = None
    commit: str | None = None
    detail: str = ""


def run_task(build: Build, task_id: str) -> Outcome:
    """Scheduler entry point: attempts until success, escalation or the retry limit."""
    task = build.plan.by_id[task_id]
    routing = build.routing[task_id]
    treatment = Treatment(routing.tier, hints=build.healer.recall(list(task.files), task.kind))
    first = build.next_attempt_number(task_id)
    build.bus.emit("task_started", build.run_id, task_id, tier=routing.tier, model=routing.model)
    build.store.upsert_task(build.run_id, task_id, status="running", started_at=iso(utcnow()))
    history: list[tuple[Evidence, str]] = []
    for number in range(first, first + build.config.build.max_retries + 1):
        end = _attempt(build, task, number, treatment)
        if end.status == "succeeded":
            build.finish_task(task_id, "succeeded", commit=end.commit)
            return Outcome("succeeded")
        if end.status in {"infra", "interrupted"}:
            build.finish_task(task_id, "interrupted", reason=end.detail)
            return Outcome("interrupted", end.detail)
        assert end.evidence is not None
        decision = build.healer.decide(task_id, end.evidence, history, treatment.tier)
        history.append((end.evidence, decision.remediation))
        build.bus.emit("remediation_chosen", build.run_id, task_id, attempt=number,
                       remediation=decision.remediation, reason=decision.reason,
                       **{"class": decision.failure_class})
        if decision.escalate:
            report = build.healer.escalation_report(build.run_id, task, decision.reason)
            build.bus.emit("task_escalated", build.run_id, task_id, reason=decision.reason,
                           report_md=report.markdown, report_json=report.data)
            build.finish_task(task_id, "escalated", reason=decision.reason)
            return Outcome("escalated", decision.reason)
        treatment = _apply(treatment, decision)
    reason = f"failed after {build.config.build.max_retries + 1} attempts"
    build.finish_task(task_id, "escalated", reason=reason)
    return Outcome("escalated", reason)


def _apply(treatment: Treatment, decision: object) -> Treatment:
    from karma.heal import Decision

    assert isinstance(decision, Decision)
    tier = treatment.tier
    if decision.escalate_model and TIERS.index(tier) + 1 < len(TIERS):
        tier = TIERS[TIERS.index(tier) + 1]
    hints = list(treatment.hints) + ([decision.hint] if decision.hint else [])
    return replace(
        treatment, tier=tier, hints=hints,
        memory_factor=treatment.memory_factor * decision.memory_factor,
        timeout_factor=treatment.timeout_factor * decision.timeout_factor,
    )


def _attempt(build: Build, task: Task, number: int, treatment: Treatment) -> AttemptEnd:
    model_name = build.config.models.for_tier(treatment.tier)
    name = f"{task.id}-{number}"
    build.bus.emit("attempt_started", build.run_id, task.id, attempt=number,
                   model=model_name, tier=treatment.tier)
    attempt_id = build.store.add_attempt(build.run_id, task.id, number, model=model_name,
                                         tier=treatment.tier, branch=build.work_branch(name))
    build.store.upsert_task(build.run_id, task.id, attempts=number, model=model_name,
                            tier=treatment.tier)
    end = AttemptEnd("interrupted", detail="the run was interrupted")
    sandbox: Sandbox | None = None
    worktree: Worktree | None = None
    try:
        with build.merge_lock:  # cut from the build branch as it stands now
            tip = build.tip()
        worktree = build.workspace.add_worktree(f"{build.run_id}/{name}",
                                                build.work_branch(name), tip)
        sandbox = build.start_sandbox(task.id, worktree.path, treatment.memory_factor)
        build.store.update_attempt(attempt_id, container_id=sandbox.id)
        build.store.upsert_task(build.run_id, task.id, image=sandbox.image,
                                container_id=sandbox.id)
        end = _work(build, task, number, treatment, worktree, sandbox, attempt_id)
    except SandboxUnavailable as exc:
        build.stop.set()
        end = AttemptEnd("infra", detail=f"infrastructure failure: {exc}")
    finally:
        if sandbox is not None:
            build.release_sandbox(sandbox)
        if worktree is not None:
            build.retire_worktree(worktree, keep=end.status != "succeeded")
        evidence = end.evidence
        build.store.update_attempt(
            attempt_id, status=end.status, finished_at=iso(utcnow()), summary=end.detail,
            evidence_json=evidence.to_json() if evidence else None,
            failure_class=evidence.failure_class if evidence else None,
            pattern_id=evidence.pattern_id if evidence else None,
            signature=evidence.signature if evidence else None,
        )
        kind = "attempt_succeeded" if end.status == "succeeded" else "attempt_failed"
        build.bus.emit(kind, build.run_id, task.id, attempt=number, status=end.status,
                       reason=end.detail)
    return end


def _work(build: Build, task: Task, number: int, treatment: Treatment,
          worktree: Worktree, sandbox: Sandbox, attempt_id: int) -> AttemptEnd:
    timeout = build.config.sandbox.exec_timeout_s * treatment.timeout_factor
    toolbox = Toolbox(worktree.path, lambda cmd: sandbox.exec(cmd, timeout_s=timeout),
                      build.config.agent.output_chars)
    model = RecordingModel(build.model(treatment.tier), build.store, build.run_id, task.id, number)
    brief = Brief(task.id, task.title, task.description, build.request, number,
                  plan_notes=build.plan_notes(task), context=build.context_text,
                  hints=tuple(treatment.hints))

    def on_step(step: int, tool: str, args: dict[str, object], output: str, error: bool) -> None:
        build.store.add_step(run_id=build.run_id, task_id=task.id, attempt=number, step=step,
                             tool=tool, arguments_json=build.redacted_json(args),
                             output=build.redact(output[-4000:]), is_error=int(error))
        build.bus.emit("tool_called", build.run_id, task.id, tool=tool, error=error)

    result = run_agent(brief, model, toolbox, build.config.agent, stop=build.stop, on_step=on_step)
    build.charge(task.id, attempt_id, result.usage, result.cost_usd)
    if result.status == "interrupted" or build.stop.is_set():
        return AttemptEnd("interrupted", detail=result.detail or "interrupted")
    if result.status != "finished":
        evidence = Evidence.from_agent(result.status, result.detail)
        return AttemptEnd("failed", build.healer.classify(evidence), detail=result.detail)
    changed = build.workspace.changed_files(worktree)
    for check, outcome in _run_checks(build, sandbox, changed, timeout):
        if not outcome.ok:
            evidence = Evidence.from_exec(check, outcome)
            return AttemptEnd("failed", build.healer.classify(evidence),
                              detail=f"check {check} failed (exit {outcome.exit_code})")
    return _integrate(build, task, number, worktree, result.summary)


def _run_checks(build: Build, sandbox: Sandbox, changed: list[str],
                timeout: float) -> list[tuple[str, ExecResult]]:
    stack = build.stack
    sources = [path for path in changed if stack.is_source(path)
               and (build.workspace_path(path)).exists()]
    tests = [path for path in sources if stack.is_test(path)]
    done = []
    for check in stack.checks:
        if check.when == "files" and not sources:
            continue
        command = check.command.format(
            files=" ".join(map(shlex.quote, sources)),
            tests=" ".join(map(shlex.quote, tests)),
        )
        if "{tests}" in check.command and not tests:
            command = stack.test_command
        outcome = sandbox.exec(command, timeout_s=timeout)
        done.append((check.step, outcome))
        if not outcome.ok:
            break
    return done


def _integrate(build: Build, task: Task, number: int, worktree: Worktree,
               summary: str) -> AttemptEnd:
    trailers = {"Karma-Run": build.run_id, "Karma-Task": task.id,
                "Karma-Attempt": str(number),
                "Karma-Model": build.config.models.for_tier(build.routing[task.id].tier)}
    message = build.redact(f"{task.title}\n\n{summary}")
    commit = build.workspace.commit(worktree, message, trailers)
    if commit is None:
        return AttemptEnd("succeeded", detail="nothing to change")
    body = message + "\n\n" + "".join(f"{k}: {v}\n" for k, v in trailers.items())
    with build.merge_lock:
        try:
            merged = build.workspace.integrate(build.branch, commit, body)
        except WorkspaceError as exc:
            return AttemptEnd("failed", Evidence.from_agent("merge", str(exc)), detail=str(exc))
    if merged.commit is None:
        files = ", ".join(merged.conflicts) or "unknown files"
        detail = f"merge conflict with the build branch in {files}"
        build.bus.emit("merge_conflict", build.run_id, task.id, files=list(merged.conflicts))
        evidence = Evidence.from_conflict(list(merged.conflicts), merged.details)
        return AttemptEnd("conflict", build.healer.classify(evidence), detail=detail)
    build.bus.emit("task_merged", build.run_id, task.id, commit=merged.commit)
    return AttemptEnd("succeeded", commit=merged.commit)
