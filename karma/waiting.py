"""Humans in the loop: what a run waits for, what a human decided, and what it covers.

A build that ends `needs_approval` or `escalated` leaves a `pending` record in the store
(kind `approval`: the commit, the critical paths, the gates asking and the diff stat;
kind `escalation`: the task, its reason, its attempts and the escalation report) and
stops resumable. `karma approve`, `karma reject` and `karma answer` decide a record (who,
when, the note) and the build resumes from the store: the decisions are read back from
it, never from the command line of the resumed build, so a crash after a decision loses
nothing.

An elevated-tier remedy (`quarantine_flaky_test`) does not wait: the task goes on with
it and a `notice` records that a human is told (the remedy, the attempt it made pass,
until when `karma reject RUN --task T` may still override it: `approval.override_h`).
A notice never makes a run wait; overriding one ends the run `failed`.

An approval covers exactly what was pending: each critical path it names with the same
git mode and object as at the approved commit, and the other gates that asked (a
partial review) only at that commit. A later change to any other critical path, or to
an approved one, needs a new approval. Notes and hints are stored redacted (the store
redacts every value) and printed inert.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from karma.config import ApprovalConfig
from karma.errors import UsageError
from karma.events import iso, utcnow
from karma.ids import RunId, TaskId

if TYPE_CHECKING:
    from karma.pipeline.build import Build
    from karma.store import PendingRow, Store, TaskRow
    from karma.workspace import Workspace

PendingKind = Literal["approval", "escalation", "notice"]
Decision = Literal["approved", "rejected", "answered", "superseded"]


@dataclass(frozen=True)
class Approval:
    """What a human approved: these critical paths as they are at `commit`."""

    commit: str
    paths: tuple[str, ...]
    gates: tuple[str, ...]


@dataclass(frozen=True)
class HumanInput:
    """The decisions a resumed build acts on, read from its run's `pending` records."""

    approvals: tuple[Approval, ...] = ()
    hints: dict[str, str] = field(default_factory=dict)
    """task id -> a human's answer to its escalation: its next attempt's treatment."""


def human_input(store: Store, run_id: RunId) -> HumanInput:
    approvals: list[Approval] = []
    hints: dict[str, str] = {}
    for row in store.pending(run_id):
        detail = json.loads(row.detail_json)
        if row.kind == "approval" and row.decision == "approved":
            approvals.append(
                Approval(detail["commit"], tuple(detail["paths"]), tuple(detail["gates"]))
            )
        elif row.kind == "escalation" and row.task_id:
            if row.decision == "answered":
                hints[row.task_id] = row.note or ""
            elif row.decision == "approved":  # `karma approve --task`: the proposed remedy
                hints[row.task_id] = (
                    f"A human approved the remedy proposed after: {detail['reason']}. "
                    + (row.note or "")
                ).strip()
    return HumanInput(tuple(approvals), hints)


def approved(workspace: Workspace, approvals: tuple[Approval, ...], head: str,
             rows: list[dict[str, Any]]) -> bool:  # fmt: skip
    """Whether every gate asking for approval on `head` is covered by one approval."""
    asking = [g for g in rows if g.get("needs_approval")]
    return bool(asking) and any(_covers(workspace, a, head, asking) for a in approvals)


def _covers(workspace: Workspace, a: Approval, head: str, asking: list[dict[str, Any]]) -> bool:
    for gate in asking:
        if gate["name"] != "approval":
            if gate["name"] not in a.gates or head != a.commit:
                return False
            continue
        for path in {str(f.get("path") or "") for f in gate.get("findings", [])}:
            if path not in a.paths:
                return False
            if head != a.commit and workspace.entry(head, path) != workspace.entry(a.commit, path):
                return False
    return True


def learn_human_hint(b: Build, task_id: TaskId, number: int, hint: str, resolved: bool) -> None:
    """A human's hint is a remedy like the others: its outcome is recorded against the
    failure it answered, and a hint that resolved it is recalled for that failure."""
    attempts = b.store.attempts(b.run_id, task_id)
    failed = [a for a in attempts if a.failure_class and a.number < number]
    if not failed:
        return
    last = failed[-1]
    b.store.add_outcome(
        run_id=b.run_id, task_id=task_id, pattern_id=last.pattern_id or "unknown",
        failure_class=last.failure_class, signature=last.signature,
        remediation="human_hint", outcome="resolved" if resolved else "failed",
        side_effects=hint[:2000],
    )  # fmt: skip
    if resolved and last.signature:
        b.store.set_failure_hint(last.signature, f"A human's fix for this failure: {hint}")


def record_waiting(b: Build, status: str, gate_rows: list[dict[str, Any]]) -> list[PendingRow]:
    """At a run's end: open records superseded (a notice keeps its override window),
    what it now waits for recorded, and each elevated remedy it went on with noticed."""
    for row in b.store.pending(b.run_id, open_only=True):
        if row.kind != "notice":
            b.store.decide_pending(row.id, "superseded", "karma", f"the run ended {status}")
    head = b.tip()
    if status == "needs_approval":
        asking = [g for g in gate_rows if g.get("needs_approval")]
        paths = sorted(
            {str(f.get("path") or "") for g in asking for f in g.get("findings", [])} - {""}
        )
        detail = {
            "commit": head,
            "paths": paths,
            "gates": [g["name"] for g in asking],
            "diff_stat": b.workspace.diff_stat(b.base_commit, head)[-4000:],
            "findings": [str(f.get("message", "")) for g in asking for f in g["findings"]][:50],
        }
        b.store.add_pending(b.run_id, "approval", detail)
    elif status == "escalated":
        tasks = [t for t in b.store.tasks(b.run_id) if t.status == "escalated"]
        for task in tasks:
            b.store.add_pending(b.run_id, "escalation", _escalation(b, task), task.id)
        if not tasks:  # the review still asks for changes after its rounds
            reason = "the review still asks for changes after build.review_rounds rounds"
            b.store.add_pending(b.run_id, "escalation", {"reason": reason, "attempts": []})
    record_notices(b.store, b.run_id, b.config.approval)
    waiting = b.store.pending(b.run_id, open_only=True)
    for row in waiting:
        b.bus.emit("human_needed", b.run_id, row.task_id, pending=summary(row))
    return waiting


def record_notices(store: Store, run_id: RunId, config: ApprovalConfig) -> None:
    """A `notice` (once) for each attempt that passed with an elevated-tier remedy."""
    from typing import get_args

    from karma.heal.remediation import tier_of
    from karma.recipes import RemediationName

    names: dict[str, RemediationName] = {n: n for n in get_args(RemediationName)}
    noticed = {(r.task_id, json.loads(r.detail_json).get("attempt"))
               for r in store.pending(run_id) if r.kind == "notice"}  # fmt: skip
    attempts = {(a.task_id, a.number): a for a in store.attempts(run_id)}
    for (task, number), a in attempts.items():
        name = names.get(a.remediation or "")
        after = attempts.get((task, number + 1))
        if name is None or tier_of(name) != "elevated" or after is None:
            continue
        if after.status != "succeeded" or (task, after.number) in noticed:
            continue
        until = iso(utcnow() + timedelta(hours=config.override_h)) if config.override_h else None
        detail = {"remediation": name, "attempt": after.number,
                  "summary": str(after.summary or "")[:500], "until": until}  # fmt: skip
        store.add_pending(run_id, "notice", detail, task)


def _escalation(b: Build, task: TaskRow) -> dict[str, Any]:
    attempts = [
        {"attempt": a.number, "status": a.status, "class": a.failure_class,
         "pattern": a.pattern_id, "remediation": a.remediation}
        for a in b.store.attempts(b.run_id, task.id)
    ]  # fmt: skip
    report: Any = None
    for event in b.store.events(b.run_id):
        if event.kind == "task_escalated" and event.task_id == task.id:
            report = json.loads(event.data_json).get("report_json")
    return {"reason": task.reason or "", "attempts": attempts, "report": report}


def summary(row: PendingRow) -> dict[str, Any]:
    """A pending record as `karma show`, events and notifications carry it."""
    detail = json.loads(row.detail_json)
    item: dict[str, Any] = {"id": row.id, "kind": row.kind, "since": row.since}
    if row.task_id:
        item["task"] = row.task_id
    if row.kind == "approval":
        for key, empty in (("paths", []), ("gates", []), ("commit", ""), ("diff_stat", "")):
            item[key] = detail.get(key, empty)
    elif row.kind == "notice":
        for key in ("remediation", "attempt", "summary", "until"):
            item[key] = detail.get(key)
    else:
        item.update(reason=detail.get("reason", ""), attempts=len(detail.get("attempts", [])))
    if row.decision:
        item.update(decision=row.decision, by=row.decided_by, at=row.decided_at,
                    note=row.note or "")  # fmt: skip
    return item


def describe(item: dict[str, Any]) -> str:
    """One pending record in a line (`karma show`, the report): what waits since when,
    or who decided what, when and why (untrusted parts flattened inert)."""
    from karma.text.inert import log_safe

    what = what_waits(item)
    if "decision" not in item and item["kind"] == "notice":
        until = f"may be overridden until {item['until']}" if item["until"] else "told only"
        return f"told at {item['since']}: {what}; {until}"
    if "decision" not in item:
        return f"waiting since {item['since']} for {what}"
    note = f": {log_safe(item['note'], 300)}" if item["note"] else ""
    return f"{item['decision']} by {log_safe(item['by'], 80)} at {item['at']}: {what}{note}"


def what_waits(item: dict[str, Any]) -> str:
    """What a pending record asks a human for, in a phrase (untrusted parts inert)."""
    from karma.text.inert import log_safe

    if item["kind"] == "approval":
        return f"approval of {', '.join(map(str, item['paths'])) or 'the change'} " + (
            f"(gates {', '.join(map(str, item['gates']))}, commit {str(item['commit'])[:12]})"
        )  # fmt: skip
    if item["kind"] == "notice":
        return (f"{item.get('task')} went on with the elevated remedy {item['remediation']} "
                f"(attempt {item['attempt']}: {log_safe(item['summary'], 200)})")  # fmt: skip
    return f"an answer for {item.get('task', 'the run')} ({log_safe(item['reason'], 200)})"


def commands(run_id: str, waiting: list[PendingRow]) -> list[str]:
    """The commands that answer what the run waits for."""
    lines: list[str] = []
    for row in waiting:
        if row.kind == "approval":
            lines += [f"karma approve {run_id}", f"karma reject {run_id}"]
        elif row.kind == "notice":
            if json.loads(row.detail_json).get("until"):
                lines.append(f'karma reject {run_id} --task {row.task_id} --note "why"')
        else:
            lines.append(f'karma answer {run_id} --task {row.task_id} "hint"')
    return lines


def expire_waiting(store: Store, config: ApprovalConfig, repo: Path) -> list[RunId]:
    """`approval.on_timeout = "reject"`: runs that waited past `approval.timeout_h` are
    rejected by `karma`; the ids rejected."""
    if not config.timeout_h or config.on_timeout == "keep_waiting":
        return []
    cutoff = iso(utcnow() - timedelta(hours=config.timeout_h))
    expired: list[RunId] = []
    for run in store.waiting_runs(repo):
        rows = [r for r in store.pending(run.id, open_only=True) if r.kind != "notice"]
        if not rows or any(r.since >= cutoff for r in rows):
            continue
        note = f"no decision within approval.timeout_h = {config.timeout_h:g} h"
        if all(store.decide_pending(r.id, "rejected", "karma", note) for r in rows):
            store.update_run(run.id, status="failed", reason=f"rejected by karma: {note}",
                             finished_at=iso(utcnow()))  # fmt: skip
            expired.append(run.id)
    return expired


def waiting_for_humans(store: Store, repo: Path) -> list[dict[str, Any]]:
    """Each open record of this repository's waiting runs, oldest first: the run, its
    spec (when a night built it), what it waits for and since when, and the command
    that answers (untrusted parts made plain)."""
    from karma.text.inert import plain

    specs = store.spec_files()
    found = []
    for run in store.waiting_runs(repo):
        for row in store.pending(run.id, open_only=True):
            if row.kind == "notice":  # told, not waiting
                continue
            item = summary(row)
            found.append({
                "run_id": run.id, "status": run.status,
                "spec": Path(specs[run.id]).name if run.id in specs else None,
                "kind": row.kind, "task": row.task_id, "since": row.since,
                "what": plain(what_waits(item), 500), "commands": commands(run.id, [row]),
            })  # fmt: skip
    return sorted(found, key=lambda w: str(w["since"]))


def resolve_run(store: Store, run_id: str) -> RunId:
    """The full id of a run named by its id or a unique prefix of it."""
    if store.run(RunId(run_id)) is not None:
        return RunId(run_id)
    found = store.run_ids_starting(run_id)
    if len(found) != 1 or not run_id:
        raise UsageError(f"no run {run_id!r} in {store.path}", tip="`karma runs` lists the runs")
    return found[0]


def open_records(store: Store, run_id: RunId) -> list[PendingRow]:
    """Everything a waiting run waits for; a UsageError when it waits for nothing."""
    run = store.run(run_id)
    rows = store.pending(run_id, open_only=True)
    if run is None or run.status not in ("needs_approval", "escalated") or not rows:
        status = run.status if run else "unknown"
        raise UsageError(f"run {run_id} is {status}: nothing waits for a decision")
    return rows


def rejectable(store: Store, run_id: RunId, task: str | None) -> list[PendingRow]:
    """What `karma reject` decides: everything a waiting run waits for, or else the
    notices (of `task`) still inside their override window."""
    run = store.run(run_id)
    if run is not None and run.status in ("needs_approval", "escalated"):
        return open_records(store, run_id)
    notices = [r for r in store.pending(run_id, open_only=True)
               if r.kind == "notice" and task in (None, r.task_id)]  # fmt: skip
    now = iso(utcnow())
    live = [r for r in notices if (json.loads(r.detail_json).get("until") or "") > now]
    if notices and not live:
        raise UsageError(f"run {run_id}: too late to override (approval.override_h)")
    return live or open_records(store, run_id)


def open_record(store: Store, run_id: RunId, kind: PendingKind, task: str | None) -> PendingRow:
    """The open record a decision is about; a clear UsageError (exit 2) when there is none."""
    run = store.run(run_id)
    if run is None:
        raise UsageError(f"no run {run_id!r} in {store.path}", tip="`karma runs` lists the runs")
    wanted = "needs_approval" if kind == "approval" else "escalated"
    rows = [r for r in store.pending(run_id, open_only=True) if r.kind == kind]
    if kind == "escalation":
        if task is None:
            raise UsageError("which task? pass --task", tip=" ".join(commands(run_id, rows)))
        rows = [r for r in rows if r.task_id == task]
    if run.status != wanted or not rows:
        decided = [r for r in store.pending(run_id) if r.kind == kind and r.decision]
        last = ""
        if decided:
            last = f" (last: {decided[-1].decision} by {decided[-1].decided_by})"
        raise UsageError(f"run {run_id} is {run.status}: nothing waits for {kind}{last}")
    return rows[-1]
