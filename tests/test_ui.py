"""The terminal view listens to events; without a TTY it prints one inert line per event."""

from __future__ import annotations

import io

from rich.console import Console

from karma.events import EventBus
from karma.ui import TerminalView


def test_one_line_per_event_without_a_tty_and_model_text_is_inert() -> None:
    buffer = io.StringIO()
    view = TerminalView(Console(file=buffer, force_terminal=False, width=200))
    bus = EventBus()
    seen: list[str] = []
    bus.subscribe(view)
    bus.subscribe(lambda event: seen.append(event.kind))
    with view:
        bus.emit("task_started", "r1", "api", model="scripted:small")
        bus.emit("attempt_failed", "r1", "api", attempt=1, reason="\x1b[31mboom\x1b[0m\x07")
        bus.emit("tool_called", "r1", "api", tool="run")  # too chatty for the log
    lines = buffer.getvalue().splitlines()
    assert lines == [
        "karma task_started api model=scripted:small",
        "karma attempt_failed api attempt=1 reason=boom",
    ]
    assert seen == ["task_started", "attempt_failed", "tool_called"]
    assert view.rows["api"].state == "retrying"
