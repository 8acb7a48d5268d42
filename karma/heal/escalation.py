"""The escalation report: a task handed to a human already diagnosed.

Markdown for people and a JSON dict for the run record, with the same content: the
task, each attempt (class, pattern, confidence, remediation and what it did), the key
log lines, the diagnosis, a recommended fix (drafted by a model when one is given,
otherwise from the pattern's hints) and exactly what the human must decide.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from karma.heal.attempts import AttemptRecord, Escalation
from karma.models.interface import ModelClient, ModelRequest, ProviderError, UserMessage
from karma.recipes import FailurePattern

SYSTEM = (
    "You are a senior engineer triaging a failed automated build task. Given the task, "
    "the failed attempts and the key log lines, write a short recommended fix: the likely "
    "root cause in one sentence, then at most five concrete steps. No preamble."
)


class TaskLike(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def title(self) -> str: ...


@dataclass(frozen=True)
class EscalationReport:
    markdown: str
    data: dict[str, Any]


def _decisions(reason: Escalation | None, pattern: FailurePattern) -> list[str]:
    if reason is not None and reason.reason == "needs_approval" and reason.remediation:
        return [
            f"Approve or reject `{reason.remediation}`: {reason.proposal or pattern.hint}",
            "If rejected: fix the cause by hand on the task's branch, or drop the task.",
        ]
    if reason is not None and reason.reason == "low_confidence":
        return [
            "Confirm the diagnosis (the classifier was unsure), then either apply the "
            "recommended fix by hand or re-run with a clarified task.",
        ]
    return [
        "Apply the recommended fix by hand on the task's branch and re-run the build, or",
        "change the task (clarify the spec, split it, or relax a requirement), or",
        "drop the task and accept the build without it.",
    ]


def _draft(model: ModelClient, prompt: str) -> tuple[str, str | None]:
    request = ModelRequest(
        system=SYSTEM, messages=(UserMessage(prompt),), max_tokens=800, purpose="escalation"
    )
    try:
        reply = model.complete(request)
    except ProviderError as exc:  # the report must still be written: fall back to the hints
        return "", f"{type(exc).__name__}: {exc}"
    return reply.text.strip(), None


def escalation_report(
    task: TaskLike,
    attempts: Sequence[AttemptRecord],
    patterns: dict[str, FailurePattern],
    fallback: FailurePattern,
    *,
    reason: Escalation | None = None,
    model: ModelClient | None = None,
) -> EscalationReport:
    last = attempts[-1] if attempts else None
    pattern = patterns.get(last.classification.pattern_id, fallback) if last else fallback
    key_lines = list(last.classification.key_lines) if last else []
    diagnosis = (
        f"{last.classification.failure_class} (pattern {pattern.id}, confidence "
        f"{last.classification.confidence:.2f}): {pattern.description or pattern.hint}"
        if last else "no failed attempt was recorded"
    )  # fmt: skip
    rows = [
        {
            "number": a.number, "step": a.evidence.step, "command": a.evidence.command,
            "exit_code": a.evidence.exit_code, "state": a.evidence.state,
            "duration_s": round(a.evidence.duration_s, 2),
            "class": a.classification.failure_class, "pattern": a.classification.pattern_id,
            "confidence": round(a.classification.confidence, 3),
            "signature": a.classification.signature, "remediation": a.remediation,
            "outcome": a.outcome, "detail": a.detail,
        }
        for a in attempts
    ]  # fmt: skip
    deterministic = pattern.hint
    recommended, drafted_by, model_error = deterministic, "pattern hints", None
    if model is not None:
        prompt = "\n".join([
            f"Task {task.id}: {task.title}", f"Diagnosis: {diagnosis}",
            *(f"Attempt {r['number']}: {r['class']} -> {r['remediation']} ({r['outcome']})"
              for r in rows),
            "Key log lines:", *key_lines, f"Known hint: {pattern.hint}",
        ])  # fmt: skip
        text, model_error = _draft(model, prompt)
        if text:
            recommended, drafted_by = text, model.name
    decisions = _decisions(reason, pattern)
    data: dict[str, Any] = {
        "task": {"id": task.id, "title": task.title},
        "reason": None if reason is None else {
            "reason": reason.reason, "detail": reason.detail,
            "remediation": reason.remediation, "proposal": reason.proposal},
        "attempts": rows, "key_lines": key_lines, "diagnosis": diagnosis,
        "recommended_fix": recommended, "drafted_by": drafted_by, "model_error": model_error,
        "human_decision": decisions,
    }  # fmt: skip
    return EscalationReport(_markdown(data), data)


def _markdown(data: dict[str, Any]) -> str:
    task, reason = data["task"], data["reason"]
    out = [f"# Escalation: task `{task['id']}` — {task['title']}", ""]
    if reason:
        out += [f"**Why:** {reason['reason'].replace('_', ' ')} — {reason['detail']}", ""]
    out += ["## Attempts", "",
            "| # | step | state | class | pattern | conf. | remediation | outcome |",
            "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in data["attempts"]:
        out.append(
            f"| {r['number']} | {r['step']} | {r['state']} | {r['class']} | `{r['pattern']}` | "
            f"{r['confidence']:.2f} | {r['remediation'] or '—'} | {r['outcome'] or '—'} |"
        )
    out += ["", "## Key log lines", "", "```text", *data["key_lines"], "```", ""]
    out += ["## Diagnosis", "", data["diagnosis"], ""]
    out += [f"## Recommended fix ({data['drafted_by']})", "", data["recommended_fix"], ""]
    out += ["## What you must decide", "", *(f"- {d}" for d in data["human_decision"]), ""]
    return "\n".join(out)
