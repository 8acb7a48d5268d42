"""The record of one run as it happens: each fact written to the run store and told on
the event bus in one call.

The pipeline says what happened (`task_started`, `attempt_finished`, `merged`, ...); the
recorder knows which row and which event that is. Text that may carry model or tool
output is redacted twice over: by the store on its way in and by the bus before any
listener sees it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from karma.events import EventBus, EventKind, iso, utcnow
from karma.ids import RunId, TaskId
from karma.store import Store
from karma.text.redact import redact

if TYPE_CHECKING:
    from karma.executor.worker import StepRow
    from karma.gates.interface import GateResult
    from karma.heal import Classification
    from karma.heal.treatment import AttemptEnd
    from karma.models.interface import Usage
    from karma.plan import Task
    from karma.routed import Routing


def redacted_json(value: object) -> str:
    return redact(json.dumps(value, sort_keys=True, default=str))


class RunRecorder:
    """One run's record: `store` rows and `bus` events, written together."""

    def __init__(self, store: Store, bus: EventBus, run_id: RunId) -> None:
        self.store = store
        self.bus = bus
        self.run_id = run_id

    def log(self, message: str, task_id: TaskId | None = None) -> None:
        self.bus.emit("log", self.run_id, task_id, message=redact(message))

    # -- tasks --------------------------------------------------------------------------------

    def task_planned(self, task: Task, route: Routing, why: str = "") -> None:
        """A planned task enters the record with its routing and the reason for it."""
        reason = why + route.reason
        self.store.upsert_task(
            self.run_id, task.id, title=task.title, kind=task.kind, status="pending",
            tier=route.tier, model=route.model, estimated_tokens=task.estimated_tokens,
            calibrated_tokens=route.calibrated_tokens, files_json=json.dumps(task.files),
            routing_json=json.dumps({"reason": reason}),
        )  # fmt: skip
        self.bus.emit("routing_decided", self.run_id, task.id, tier=route.tier,
                      model=route.model, reason=reason)  # fmt: skip

    def task_started(self, task_id: TaskId, *, tier: str, model: str) -> None:
        self.bus.emit("task_started", self.run_id, task_id, tier=tier, model=model)
        self.store.upsert_task(self.run_id, task_id, status="running", started_at=iso(utcnow()))

    def task_finished(self, task_id: TaskId, status: str, *, commit: str | None = None,
                      reason: str | None = None) -> None:  # fmt: skip
        self.store.upsert_task(self.run_id, task_id, status=status, commit_sha=commit,
                               reason=reason, finished_at=iso(utcnow()))  # fmt: skip
        if status in {"succeeded", "failed"}:  # an escalation carries its report
            kind: EventKind = "task_succeeded" if status == "succeeded" else "task_failed"
            self.bus.emit(kind, self.run_id, task_id, reason=reason or "")

    def task_escalated(self, task_id: TaskId, *, reason: str, detail: str, report_md: str,
                       report: dict[str, Any]) -> None:  # fmt: skip
        report_json = json.loads(redacted_json(report))
        self.bus.emit("task_escalated", self.run_id, task_id, reason=detail,
                      report_md=redact(report_md), report_json=report_json)  # fmt: skip
        self.task_finished(task_id, "escalated", reason=reason)

    def task_skipped(self, task_id: TaskId, status: str, reason: str) -> None:
        self.store.upsert_task(self.run_id, task_id, status=status, reason=reason)
        self.bus.emit("task_skipped", self.run_id, task_id, reason=reason)

    # -- attempts -------------------------------------------------------------------------------

    def attempt_started(self, task_id: TaskId, number: int, *, model: str, tier: str,
                        branch: str | None) -> int:  # fmt: skip
        """The attempt's row, and the task's latest attempt; the attempt's id."""
        self.bus.emit("attempt_started", self.run_id, task_id, attempt=number, model=model,
                      tier=tier)  # fmt: skip
        attempt_id = self.store.add_attempt(self.run_id, task_id, number, model=model,
                                            tier=tier, branch=branch)  # fmt: skip
        self.store.upsert_task(self.run_id, task_id, attempts=number, model=model, tier=tier)
        return attempt_id

    def attempt_placed(self, attempt_id: int, task_id: TaskId, *, image: str, container_id: str,
                       worker: str | None = None,
                       docker_host: str | None = None) -> None:  # fmt: skip
        """Where the attempt ran: its sandbox, and on a cluster its worker and engine."""
        placed: dict[str, Any] = {"container_id": container_id}
        if worker is not None:
            placed |= {"worker": worker, "docker_host": docker_host}
        self.store.update_attempt(attempt_id, **placed)
        self.store.upsert_task(self.run_id, task_id, image=image, **placed)

    def step(self, task_id: TaskId, number: int, step: int, tool: str, args: dict[str, object],
             output: str, error: bool) -> None:  # fmt: skip
        """One agent step (its output's tail)."""
        self.store.add_step(run_id=self.run_id, task_id=task_id, attempt=number, step=step,
                            tool=tool, arguments_json=redacted_json(args),
                            output=redact(output[-4000:]), is_error=int(error))  # fmt: skip
        self.bus.emit("tool_called", self.run_id, task_id, tool=tool, error=error)

    def arrived(self, task_id: TaskId, number: int, steps: Iterable[StepRow],
                calls: Iterable[Mapping[str, Any]]) -> None:  # fmt: skip
        """A worker's steps and model calls of an attempt, as it reports them at its end
        (their news reached the bus as they happened, through the worker's events)."""
        for call in calls:
            self.store.add_model_call(**call)
        for s in steps:
            self.store.add_step(run_id=self.run_id, task_id=task_id, attempt=number,
                                step=s.step, tool=s.tool, arguments_json=redacted_json(s.arguments),
                                output=redact(s.output), is_error=int(s.is_error))  # fmt: skip

    def charge(self, task_id: TaskId, attempt_id: int, usage: Usage, cost: float) -> None:
        """An attempt's usage so far, added to its task and its run."""
        tokens_in, tokens_out = usage.total_in, usage.output_tokens
        self.store.update_attempt(attempt_id, tokens_in=tokens_in, tokens_out=tokens_out,
                                  cost_usd=cost)  # fmt: skip
        self.store.charge(self.run_id, task_id, tokens_in=tokens_in, tokens_out=tokens_out,
                          cost_usd=cost)  # fmt: skip
        self.bus.emit("model_called", self.run_id, task_id, tokens=tokens_in + tokens_out,
                      cost_usd=round(cost, 6))  # fmt: skip

    def attempt_finished(self, attempt_id: int, task_id: TaskId, number: int,
                         end: AttemptEnd) -> None:  # fmt: skip
        c = end.classification
        self.store.update_attempt(
            attempt_id,
            status=end.status,
            finished_at=iso(utcnow()),
            summary=redact(end.detail),
            evidence_json=redacted_json(end.evidence.to_json()) if end.evidence else None,
            failure_class=c.failure_class if c else None,
            pattern_id=c.pattern_id if c else None,
            signature=c.signature if c else None,
        )
        kind: EventKind = "attempt_succeeded" if end.status == "succeeded" else "attempt_failed"
        self.bus.emit(kind, self.run_id, task_id, attempt=number, status=end.status,
                      reason=end.detail)  # fmt: skip

    def attempt_lost(self, task_id: TaskId, number: int, reason: str) -> None:
        """A try of an attempt lost with its worker and run again elsewhere: an
        infrastructure failure, not the task's."""
        self.bus.emit("attempt_failed", self.run_id, task_id, attempt=number, status="infra",
                      reason=reason)  # fmt: skip

    def classified(self, task_id: TaskId, number: int, c: Classification, *,
                   treated: bool = False) -> None:  # fmt: skip
        """How the attempt's failure was classified (`treated`: the class a failed remedy
        was treating, which stays the attempt's failure)."""
        if treated:
            self.store.update_attempt_by_number(
                self.run_id, task_id, number, failure_class=c.failure_class,
                pattern_id=c.pattern_id, signature=c.signature,
            )  # fmt: skip
        self.bus.emit("failure_classified", self.run_id, task_id, attempt=number,
                      pattern=c.pattern_id, confidence=c.confidence,
                      **{"class": c.failure_class})  # fmt: skip

    def remedy_chosen(self, task_id: TaskId, number: int, remedy: str | None, *,
                      failure_class: str, tier: str | None = None) -> None:  # fmt: skip
        """The remedy for the attempt's failure; None: the task goes to a human."""
        self.store.update_attempt_by_number(self.run_id, task_id, number, remediation=remedy)
        if remedy is not None:
            self.bus.emit("remediation_chosen", self.run_id, task_id, attempt=number,
                          remediation=remedy, tier=tier, **{"class": failure_class})  # fmt: skip

    # -- gates and the end ---------------------------------------------------------------------

    def gate_started(self, name: str, *, blocking: bool, round_no: int) -> None:
        self.bus.emit("gate_started", self.run_id, name=name, blocking=blocking, round=round_no)

    def gate_finished(self, result: GateResult, *, blocking: bool, round_no: int,
                      counts: Mapping[str, Any]) -> None:  # fmt: skip
        """A gate's result with its findings, and its one line for the live view."""
        findings = [f.as_json() for f in result.findings]
        self.store.add_gate_result(self.run_id, name=result.name, status=result.status,
                                   blocking=int(blocking), duration_s=result.duration_s,
                                   findings_json=redacted_json(findings))  # fmt: skip
        self.bus.emit("gate_finished", self.run_id, name=result.name, status=result.status,
                      blocking=blocking, findings=len(findings), summary=result.summary,
                      duration_s=round(result.duration_s, 3), **counts, round=round_no)  # fmt: skip

    def budget_stopped(self, task_id: TaskId, reason: str) -> None:
        self.bus.emit("budget_stopped", self.run_id, task_id, reason=reason)

    def run_finished(self, status: str, reason: str, *, head: str, branch: str,
                     pending: list[dict[str, Any]]) -> None:  # fmt: skip
        self.store.update_run(self.run_id, status=status, head_commit=head, reason=reason,
                              finished_at=iso(utcnow()))  # fmt: skip
        self.bus.emit("run_finished", self.run_id, status=status, reason=reason, branch=branch,
                      pending=pending)  # fmt: skip

    # -- integration --------------------------------------------------------------------------

    def merged(self, task_id: TaskId, commit: str) -> None:
        self.bus.emit("task_merged", self.run_id, task_id, commit=commit)

    def merge_conflict(self, task_id: TaskId, files: list[str]) -> None:
        self.bus.emit("merge_conflict", self.run_id, task_id, files=files)
