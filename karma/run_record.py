"""The run record: everything a report shows, read from the store into one `RunRecord`.

`load_run` reads the request, the plan, tasks and their attempts with failure classes and
remediations, the model calls' totals, gates and findings, escalations and what humans
decided; `timeline` and `task_changes` derive the Gantt bars and each task's diff. The
renderers (`report.py`, `report_html.py`, `report_svg.py`) never touch the store.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from karma.errors import UsageError
from karma.ids import RunId
from karma.store import AttemptRow, ModelCallRow, RunRow, Store, TaskRow
from karma.waiting import summary


@dataclass(frozen=True)
class RunRecord:
    run: RunRow
    plan: Mapping[str, Any]
    tasks: list[TaskRow]
    attempts: list[AttemptRow]
    calls: list[ModelCallRow]
    gates: list[dict[str, Any]]
    """Each gate's row, with its `findings` parsed and its `summary` and `counts`."""
    escalations: list[dict[str, Any]]
    human: list[dict[str, Any]] = field(default_factory=list)
    """What the run waits for and what humans decided (`karma.waiting.summary` rows)."""

    @property
    def run_id(self) -> RunId:
        return self.run.id

    def attempts_of(self, task_id: str) -> list[AttemptRow]:
        return [a for a in self.attempts if a.task_id == task_id]

    def deps(self) -> dict[str, list[str]]:
        known = {t.id for t in self.tasks}
        deps = {
            str(t["id"]): [str(d) for d in t.get("deps", [])] for t in self.plan.get("tasks", [])
        }
        for task_id in known:
            deps.setdefault(task_id, [])
        return deps

    def generations(self) -> list[list[str]]:
        """The plan's generations, or ones computed from the dependencies."""
        given = self.plan.get("generations")
        if given:
            return [[str(t) for t in gen] for gen in given]
        deps, done, gens = self.deps(), set[str](), []
        while len(done) < len(deps):
            gen = sorted(t for t, ds in deps.items() if t not in done and set(ds) <= done)
            if not gen:  # a cycle in a broken record: put the rest in one row
                gen = sorted(set(deps) - done)
            gens.append(gen)
            done |= set(gen)
        return gens

    def cache_share(self, task_id: str | None = None) -> float | None:
        """The share of input tokens served from the provider's prompt cache, over the
        model calls of one task (or of the whole run); None before any input."""
        calls = [c for c in self.calls if task_id is None or c.task_id == task_id]
        read = sum(int(c.cache_read_tokens or 0) for c in calls)
        total = read + sum(int(c.input_tokens or 0) + int(c.cache_write_tokens or 0)
                           for c in calls)  # fmt: skip
        return round(read / total, 4) if total else None

    def totals(self) -> dict[str, Any]:
        return {
            "tasks": len(self.tasks),
            "succeeded": sum(t.status == "succeeded" for t in self.tasks),
            "attempts": len(self.attempts),
            "model_calls": len(self.calls),
            "tokens_in": sum(int(t.tokens_in or 0) for t in self.tasks),
            "tokens_out": sum(int(t.tokens_out or 0) for t in self.tasks),
            "cost_usd": round(float(self.run.cost_usd or 0.0), 6),
            "cache_read_share": self.cache_share(),
        }


def share_text(share: float | None) -> str:
    """A cache-read share for people: `87%`, or `-` when nothing was read in."""
    return "-" if share is None else f"{share:.0%}"


def load_run(store: Store, run_id: str) -> RunRecord:
    run = store.run(RunId(run_id))
    if run is None:
        matches = store.run_ids_starting(run_id)
        if len(matches) != 1:
            raise UsageError(
                f"no run {run_id!r} in {store.path}", tip="`karma runs` lists the runs"
            )
        run = store.run(matches[0])
        assert run is not None
    plan: dict[str, Any] = {}
    if run.plan_json:
        try:
            plan = json.loads(run.plan_json)
        except json.JSONDecodeError:
            plan = {}
    rid = run.id
    events = store.events(rid)
    # A gate's one-line result and counts travel in its `gate_finished` event, in the same
    # order as its rows (both are written as it finishes).
    finished: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        if event.kind == "gate_finished":
            data = json.loads(event.data_json or "{}")
            finished.setdefault(str(data.get("name")), []).append(data)
    gates = []
    for row in store.gate_results(rid):
        try:
            findings = json.loads(row.findings_json or "[]")
        except json.JSONDecodeError:
            findings = []
        seen = finished.get(row.name) or [{}]
        event_data = seen.pop(0) if len(seen) > 1 else seen[0]
        gates.append(
            {
                **row.as_dict(),
                "findings": findings if isinstance(findings, list) else [],
                "summary": str(event_data.get("summary") or ""),
                "counts": event_data.get("counts") or {},
            }
        )
    escalations = []
    for event in events:
        if event.kind == "task_escalated":
            data = json.loads(event.data_json or "{}")
            escalations.append(
                {
                    "task_id": event.task_id,
                    "ts": event.ts,
                    "reason": data.get("reason", ""),
                    "report_md": data.get("report_md", ""),
                    "report_json": data.get("report_json"),
                }
            )
    return RunRecord(
        run=run,
        plan=plan,
        tasks=store.tasks(rid),
        attempts=store.attempts(rid),
        calls=store.model_calls(rid),
        gates=gates,
        escalations=escalations,
        human=[summary(row) for row in store.pending(rid)],
    )


# -- timeline -----------------------------------------------------------------------------------


def parse_ts(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def timeline(record: RunRecord) -> list[dict[str, Any]]:
    """Bars of the Gantt: one per attempt (seconds from the run's start), with the Dask
    worker that ran it (None for an attempt run by `karma build` itself)."""
    bars: list[dict[str, Any]] = []
    starts = [parse_ts(a.started_at) for a in record.attempts]
    start = parse_ts(record.run.created_at)
    known = [s for s in starts if s is not None]
    if known:
        start = min([*known, *([start] if start else [])])
    if start is None:
        return bars
    for attempt in record.attempts:
        a0, a1 = parse_ts(attempt.started_at), parse_ts(attempt.finished_at)
        if a0 is None:
            continue
        end = a1 or a0
        bars.append(
            {
                "task": attempt.task_id,
                "attempt": attempt.number,
                "status": attempt.status,
                "model": attempt.model,
                "worker": attempt.worker,
                "start_s": round((a0 - start).total_seconds(), 3),
                "end_s": round((end - start).total_seconds(), 3),
            }
        )
    return bars


def max_parallel(bars: Sequence[Mapping[str, Any]]) -> int:
    points = sorted(
        [(b["start_s"], 1) for b in bars] + [(b["end_s"], -1) for b in bars],
        key=lambda p: (p[0], p[1]),
    )
    best = now = 0
    for _, step in points:
        now += step
        best = max(best, now)
    return best


@dataclass(frozen=True)
class TaskChange:
    """What one task's commit changed: per file, lines added and removed; the diff."""

    files: tuple[tuple[str, int, int], ...]
    diff: str
    truncated: bool = False


DIFF_LIMIT = 200_000
"""Characters of one task's diff kept in the report (the whole diff is on the branch)."""


def task_changes(repo: Path, record: RunRecord) -> dict[str, TaskChange]:
    """Each task's change, from its recorded commit against that commit's parent. Git runs
    with no external diff, no textconv and no hooks: the report never runs repo config."""
    changes: dict[str, TaskChange] = {}
    for task in record.tasks:
        sha = task.commit_sha or ""
        if not re.fullmatch(r"[0-9a-f]{40}", sha):
            continue
        numstat = _git(repo, "diff", "--numstat", "--no-renames", "-z", f"{sha}^", sha)
        diff = _git(repo, "diff", "--no-renames", f"{sha}^", sha)
        if numstat is None or diff is None:
            continue
        files = []
        for entry in filter(None, numstat.split("\0")):
            added, removed, path = [*entry.split("\t", 2), "", ""][:3]
            files.append((path, _count(added), _count(removed)))
        changes[str(task.id)] = TaskChange(
            tuple(files), diff[:DIFF_LIMIT], truncated=len(diff) > DIFF_LIMIT
        )
    return changes


def _count(field: str) -> int:
    """A numstat count; git writes "-" for a binary file."""
    return int(field) if field.isdigit() else 0


def _git(repo: Path, *args: str) -> str | None:
    import subprocess

    safe = ["-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false", "-C", str(repo)]
    options = ["--no-ext-diff", "--no-textconv", "--no-color"]
    command = ["git", *safe, args[0], *options, *args[1:]]
    try:
        done = subprocess.run(command, capture_output=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.decode("utf-8", "replace")
