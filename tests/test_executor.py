"""What the coordinator takes from a worker's messages: only news of its own attempt."""

from __future__ import annotations

from karma.events import Event, EventBus
from karma.executor.remote import relay


def test_a_workers_messages_become_the_events_the_local_runner_emits() -> None:
    bus = EventBus()
    heard: list[Event] = []
    bus.subscribe(heard.append)
    tell = relay(bus, "run-1")
    tell({"kind": "attempt_started", "key": "k", "task_id": "t1", "attempt": 1,
          "worker_name": "w0", "docker_host": "unix:///e.sock"})  # fmt: skip
    tell({"kind": "tool_called", "task_id": "t1", "tool": "run", "error": 0})
    tell({"kind": "run_finished", "task_id": "t1", "status": "succeeded"})  # not a worker's
    tell({"kind": "gate_finished", "name": "tests", "status": "passed"})
    assert [(e.kind, e.run_id, e.task_id) for e in heard] == [
        ("log", "run-1", "t1"),
        ("tool_called", "run-1", "t1"),
    ]
    assert heard[0].data["message"] == "attempt 1 started on worker w0 (unix:///e.sock)"
    assert heard[1].data == {"tool": "run", "error": False}


def test_a_worker_cannot_flood_the_record_with_long_names() -> None:
    bus = EventBus()
    heard: list[Event] = []
    bus.subscribe(heard.append)
    relay(bus, "run-1")({"kind": "tool_called", "task_id": "t" * 10_000, "tool": "x" * 10_000})
    assert len(heard[0].task_id or "") == 200 and len(heard[0].data["tool"]) == 64
