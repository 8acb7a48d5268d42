"""The terminal view of a build: it listens to engine events and never drives anything.

On a terminal, a live table of tasks (state, model, attempt, elapsed, tokens, cost) and
the DAG's progress; without a TTY (pipes, CI) one plain line per event on stderr. Model
text never reaches the terminal raw: secrets are redacted, control sequences stripped.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from karma.ci import log_safe
from karma.events import Event

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


@dataclass
class TerminalView:
    """Subscriber rendering a live table (TTY) or line-per-event log (otherwise)."""

    console: Console
    rows: dict[str, _Row] = field(default_factory=dict)
    _live: Live | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, event: Event) -> None:
        with self._lock:
            self._update(event)
            if self._live is not None:
                self._live.update(self._table())
            elif event.kind not in {"model_called", "tool_called"}:
                self.console.print(Text(self._line(event)), highlight=False)

    def __enter__(self) -> TerminalView:
        if self.console.is_terminal:
            self._live = Live(self._table(), console=self.console, refresh_per_second=4)
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
        who = f" {event.task_id}" if event.task_id else ""
        detail = " ".join(
            f"{k}={log_safe(v, 120)}"
            for k, v in event.data.items()
            if k
            in {
                "attempt",
                "model",
                "reason",
                "status",
                "class",
                "remediation",
                "commit",
                "name",
                "cost_usd",
                "branch",
                "message",
            }
        )
        return f"karma {event.kind}{who} {detail}".rstrip()

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
