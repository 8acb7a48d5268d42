"""Engine events and the bus that carries them to subscribers.

The engine only emits; the terminal view, the CI log, and the run record subscribe.
Tests assert on events rather than on terminal text. An event's data is redacted
(`karma.text.redact`) before any subscriber sees it: model text, tool output and reasons
travel in events, and a subscriber may print them or send them elsewhere.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from karma.text.redact import redact_value, remember_host_secrets

EventKind = Literal[
    "run_started",
    "plan_ready",
    "routing_decided",
    "task_ready",
    "task_started",
    "task_skipped",
    "attempt_started",
    "model_called",
    "tool_called",
    "attempt_failed",
    "attempt_succeeded",
    "failure_classified",
    "remediation_chosen",
    "task_merged",
    "merge_conflict",
    "task_succeeded",
    "task_failed",
    "task_escalated",
    "gate_started",
    "gate_finished",
    "budget_stopped",
    "run_interrupted",
    "run_finished",
    "human_needed",
    "human_decided",
    "notified",
    "log",
]


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(ts: datetime) -> str:
    """ISO-8601 UTC with milliseconds: the time format of every record and `--json`."""
    return ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Event:
    kind: EventKind
    run_id: str
    task_id: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)
    ts: datetime = field(default_factory=utcnow)


Subscriber = Callable[[Event], None]


class EventBus:
    """Delivers each event to every subscriber, in order, one event at a time."""

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []
        self._lock = threading.Lock()
        remember_host_secrets()  # the secrets of the environment the bus is made in

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)

    def emit(self, kind: EventKind, run_id: str, task_id: str | None = None, **data: Any) -> Event:
        event = Event(kind, run_id, task_id, redact_value(data))
        with self._lock:
            for subscriber in self._subscribers:
                subscriber(event)
        return event
