"""The terminal view listens to events; without a TTY it prints one inert line per event."""

from __future__ import annotations

import io
import re

from rich.console import Console

from karma.events import EventBus
from karma.ui import TerminalView, summary_lines

PLAN = [
    {"id": "models", "title": "Models", "deps": [], "tier": "small", "model": "m:s",
     "cost_usd": 0.01},
    {"id": "api", "title": "API", "deps": ["models"], "tier": "medium", "model": "m:m",
     "cost_usd": 0.17899999999999997},
]  # fmt: skip


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
    lines = [line.split(" ", 1)[1] for line in buffer.getvalue().splitlines()]
    assert lines == [
        "karma task_started api model=scripted:small",
        "karma attempt_failed api attempt=1 reason=boom",
    ]
    assert seen == ["task_started", "attempt_failed", "tool_called"]
    assert view.rows["api"].state == "retrying"


def _lines(*events: tuple[str, str | None, dict[str, object]], width: int = 40) -> list[str]:
    buffer = io.StringIO()
    view = TerminalView(Console(file=buffer, force_terminal=False, width=width))
    bus = EventBus()
    bus.subscribe(view)
    with view:
        for kind, task, data in events:
            bus.emit(kind, "r1", task, **data)  # type: ignore[arg-type]
    return buffer.getvalue().splitlines()


def test_lines_carry_a_utc_time_are_never_wrapped_and_round_numbers_for_people() -> None:
    long_reason = "x" * 150
    lines = _lines(
        ("plan_ready", None, {"tasks": ["models", "api"], "cost_usd": 0.18899999999999997,
                              "critical_path": ["models", "api"], "plan": PLAN}),
        ("attempt_failed", "api", {"attempt": 1, "reason": long_reason}),
        ("gate_finished", None, {"name": "tests", "status": "passed", "findings": 0,
                                 "summary": "12 passed", "duration_s": 3.14159}),
        ("run_finished", None, {"status": "succeeded", "branch": "karma/r1"}),
    )  # fmt: skip
    assert len(lines) == 4  # one line per event on a 40-column console: nothing wrapped
    for line in lines:
        assert re.match(r"^\d\d:\d\d:\d\dZ karma ", line), line
    assert lines[0].endswith("karma plan_ready cost=$0.1890 plan=models[small] api[medium<models]")
    assert "reason=" + long_reason[:100] in lines[1]
    assert lines[2].endswith(
        "karma gate_finished name=tests status=passed findings=0 summary=12 passed duration_s=3.1s"
    )
    assert "0.18899" not in "\n".join(lines)


def test_the_live_view_shows_the_plan_and_each_gate_as_it_runs_and_finishes() -> None:
    console = Console(record=True, force_terminal=True, width=120)
    view = TerminalView(console)
    bus = EventBus()
    bus.subscribe(view)
    with view:
        bus.emit("plan_ready", "r1", tasks=["models", "api"], cost_usd=0.189,
                 critical_path=["models", "api"], plan=PLAN)  # fmt: skip
        bus.emit("task_merged", "r1", "models")
        bus.emit("gate_started", "r1", name="secrets", blocking=True)
        bus.emit("gate_started", "r1", name="tests", blocking=True)
        running = console.export_text(clear=False)
        bus.emit("gate_finished", "r1", name="secrets", status="passed", summary="no secrets",
                 duration_s=0.2, findings=0)  # fmt: skip
    text = console.export_text()
    assert "Plan" in running and "api" in running and "models" in running
    assert "medium" in running and "$0.1790" in running and "forecast $0.1890" in running
    assert "Quality gates" in text and "0/2 gates finished" in running
    assert view.gates["secrets"].state == "passed" and view.gates["tests"].state == "running"
    assert "no secrets" in text and "1/2 gates finished" in text
    assert view.forecast_usd == 0.189


def test_the_summary_says_what_happened_and_what_to_run_next() -> None:
    result = {
        "run_id": "r1",
        "status": "interrupted",
        "branch": "karma/r1",
        "cost_usd": 0.123456,
        "report": "/repo/.karma/reports/r1.html",
        "gates": [
            {"name": "tests", "status": "passed", "blocking": True, "summary": "12 passed"},
            {"name": "bench", "status": "warn", "blocking": False, "summary": "+3% slower"},
        ],
    }
    lines = summary_lines(result, forecast_usd=0.2, resumable=True)
    assert lines[0] == "interrupted: run r1"
    assert "  gate tests     passed  12 passed" in lines
    assert "  gate bench     warn    (advisory) +3% slower" in lines
    assert "  branch   karma/r1" in lines and "  report   /repo/.karma/reports/r1.html" in lines
    assert "  cost     $0.1235 (forecast $0.2000)" in lines
    assert lines[-3:] == ["  git diff main...karma/r1", "  karma show r1", "  karma resume r1"]
    assert "  karma resume r1" not in summary_lines(result, forecast_usd=None, resumable=False)
