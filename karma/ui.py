"""The terminal view of a build: it listens to engine events and never drives anything.

On a terminal: the plan (tasks, dependencies, tiers, forecast) printed when it is ready,
then a live table of tasks (state, model, attempt, elapsed, tokens, cost) and of the
gates as each runs and finishes. Without a TTY (pipes, CI) one line per event on stderr,
never wrapped, with its UTC time and numbers rounded for people (`cost=$0.1890`).
`summary_lines` is the end of a build a person can act on. Model text never reaches the
terminal raw: secrets are redacted, control sequences stripped.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from karma.events import Event
from karma.text.inert import log_safe

_STATE = {
    "task_ready": "ready",
    "task_started": "running",
    "attempt_started": "running",
    "attempt_failed": "retrying",
    "task_succeeded": "done",
    "task_merged": "merged",
    "task_failed": "failed",
    "task_escalated": "escalated",
    "task_skipped": "skipped",
}
_STYLE = {
    "done": "green",
    "merged": "green",
    "failed": "red",
    "escalated": "magenta",
    "skipped": "dim",
    "retrying": "yellow",
    "running": "cyan",
}


@dataclass
class _Row:
    state: str = "pending"
    model: str = ""
    attempt: int = 0
    started: float | None = None
    ended: float | None = None
    tokens: int = 0
    cost: float = 0.0


_LINE_KEYS = (
    "attempt", "model", "tier", "deps", "reason", "status", "class", "remediation", "commit",
    "name", "findings", "duration_s", "summary", "cost_usd", "branch", "message",
)  # fmt: skip
_GATE_STYLE = {"passed": "green", "failed": "red", "error": "red", "warn": "yellow"}


def human(key: str, value: object) -> str:
    """A value as a person reads it: money to 4 decimals, seconds to 1, lists joined."""
    if isinstance(value, bool) or not isinstance(value, (int, float, list, tuple)):
        return log_safe(value, 120)
    if isinstance(value, (list, tuple)):
        return ",".join(log_safe(v, 40) for v in value) or "-"
    if key.endswith("usd"):
        return f"${value:.4f}"
    if isinstance(value, float):
        return f"{value:.1f}s" if key.endswith("_s") else f"{value:.4g}"
    return str(value)


@dataclass
class _Gate:
    state: str = "running"
    started: float = field(default_factory=time.monotonic)
    duration_s: float | None = None
    summary: str = ""


@dataclass
class TerminalView:
    """Subscriber rendering a live table (TTY) or line-per-event log (otherwise)."""

    console: Console
    rows: dict[str, _Row] = field(default_factory=dict)
    gates: dict[str, _Gate] = field(default_factory=dict)
    forecast_usd: float | None = None
    _live: Live | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, event: Event) -> None:
        with self._lock:
            self._update(event)
            if self._live is not None:
                if event.kind == "plan_ready":  # above the live view, where it stays
                    self._live.console.print(plan_table(event.data))
                # A gate's start or end shows at once; other events at the next refresh.
                self._live.update(self._view(), refresh=event.kind.startswith("gate_"))
            elif event.kind not in {"model_called", "tool_called"}:
                self.console.print(
                    Text(self._line(event)), highlight=False, soft_wrap=True, crop=False
                )

    def __enter__(self) -> TerminalView:
        if self.console.is_terminal:
            self._live = Live(self._view(), console=self.console, refresh_per_second=4)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)
            self._live = None

    def _update(self, event: Event) -> None:
        data: dict[str, Any] = dict(event.data)
        if event.kind == "plan_ready":
            for task in data.get("tasks", ()):
                self.rows.setdefault(str(task), _Row())
            if isinstance(data.get("cost_usd"), (int, float)):
                self.forecast_usd = float(data["cost_usd"])
        if event.kind == "gate_started":
            self.gates[str(data.get("name"))] = _Gate()
        if event.kind == "gate_finished":
            gate = self.gates.setdefault(str(data.get("name")), _Gate())
            gate.state = str(data.get("status", "done"))
            gate.duration_s = float(data.get("duration_s") or time.monotonic() - gate.started)
            gate.summary = str(data.get("summary", ""))
        if event.task_id is None:
            return
        row = self.rows.setdefault(event.task_id, _Row())
        row.state = _STATE.get(event.kind, row.state)
        if event.kind == "attempt_started":
            row.attempt = int(data.get("attempt", row.attempt))
            row.model = str(data.get("model", row.model))
            row.started = row.started or time.monotonic()
        if event.kind == "model_called":
            row.tokens += int(data.get("tokens", 0))
            row.cost += float(data.get("cost_usd", 0.0))
        if event.kind in {"task_merged", "task_failed", "task_escalated", "task_skipped"}:
            row.ended = time.monotonic()

    def _line(self, event: Event) -> str:
        """One line: `HH:MM:SSZ karma KIND [TASK] key=value ...`, values for people."""
        who = f" {event.task_id}" if event.task_id else ""
        data = event.data
        if event.kind == "plan_ready":  # the plan in one line: each task, its deps and tier
            tasks = [t for t in data.get("plan", ()) if isinstance(t, Mapping)]
            shown = " ".join(
                f"{log_safe(t.get('id'), 40)}[{log_safe(t.get('tier'), 10)}"
                f"{'<' + human('deps', t.get('deps')) if t.get('deps') else ''}]"
                for t in tasks
            )
            data = {"cost_usd": data.get("cost_usd", 0.0), **({"plan": shown} if shown else {})}
        detail = " ".join(
            f"{'cost' if k == 'cost_usd' else k}={human(k, v)}"
            for k, v in data.items()
            if k in _LINE_KEYS or k == "plan"
        )
        stamp = event.ts.astimezone(UTC).strftime("%H:%M:%SZ")
        return f"{stamp} karma {event.kind}{who} {detail}".rstrip()

    def _view(self) -> Group | Table:
        if not self.gates:
            return self._table()
        gates = Table(title="Quality gates", expand=False)
        for column in ("gate", "state", "elapsed", "result"):
            gates.add_column(column)
        now = time.monotonic()
        for name, gate in self.gates.items():
            elapsed = gate.duration_s if gate.duration_s is not None else now - gate.started
            gates.add_row(
                log_safe(name, 40),
                Text(gate.state, style=_GATE_STYLE.get(gate.state, "cyan")),
                f"{elapsed:5.1f}s",
                Text(log_safe(gate.summary, 80)),
            )
        finished = sum(g.duration_s is not None for g in self.gates.values())
        gates.caption = f"{finished}/{len(self.gates)} gates finished"
        return Group(self._table(), gates)

    def _table(self) -> Table:
        table = Table(title="KARMA build", expand=False)
        for column in ("task", "state", "model", "attempt", "elapsed", "tokens", "cost"):
            table.add_column(column)
        now = time.monotonic()
        for task, row in self.rows.items():
            elapsed = ((row.ended or now) - row.started) if row.started else 0.0
            table.add_row(
                log_safe(task),
                Text(row.state, style=_STYLE.get(row.state, "")),
                log_safe(row.model),
                str(row.attempt or ""),
                f"{elapsed:5.1f}s" if row.started else "",
                f"{row.tokens:,}",
                f"${row.cost:.4f}",
            )
        done = sum(row.state in {"merged", "done"} for row in self.rows.values())
        table.caption = f"{done}/{len(self.rows)} tasks integrated"
        return table


def plan_table(data: Mapping[str, Any]) -> Table:
    """The plan of a `plan_ready` event: each task, its dependencies, tier, model, cost."""
    table = Table(title="Plan", expand=False)
    for column in ("task", "title", "deps", "tier", "model", "forecast"):
        table.add_column(column)
    critical = {str(t) for t in data.get("critical_path", ())}
    for task in data.get("plan", ()):
        if not isinstance(task, Mapping):
            continue
        tid = log_safe(task.get("id"), 40)
        table.add_row(
            Text(tid + (" *" if tid in critical else ""), style="bold" if tid in critical else ""),
            Text(log_safe(task.get("title"), 50)),
            human("deps", task.get("deps") or []),
            log_safe(task.get("tier"), 10),
            log_safe(task.get("model"), 40),
            human("cost_usd", task.get("cost_usd") or 0.0),
        )
    table.caption = f"forecast {human('cost_usd', data.get('cost_usd') or 0.0)}; * critical path"
    return table


def summary_lines(
    result: Mapping[str, Any], *, forecast_usd: float | None, resumable: bool
) -> list[str]:
    """The end of a build as a person can act on it: status, each gate in one line, the
    branch, the report, cost against forecast, and the commands to run next."""
    status, branch, run_id = result["status"], result["branch"], result["run_id"]
    lines = [f"{status}: run {run_id}"]
    for gate in result.get("gates") or ():
        blocking = "" if gate.get("blocking", True) else " (advisory)"
        lines.append(
            f"  gate {log_safe(gate['name'], 20):<9} {gate['status']:<7}{blocking} "
            f"{log_safe(gate.get('summary', ''), 100)}".rstrip()
        )
    lines.append(f"  branch   {branch}")
    if result.get("report"):
        lines.append(f"  report   {result['report']}")
    cost = human("cost_usd", float(result.get("cost_usd") or 0.0))
    if forecast_usd is not None:
        cost += f" (forecast {human('cost_usd', forecast_usd)})"
    lines.append(f"  cost     {cost}")
    lines.append("next:")
    lines.append(f"  git diff main...{branch}")
    lines.append(f"  karma show {run_id}")
    if resumable:
        lines.append(f"  karma resume {run_id}")
    return lines
