"""What the coordinator takes from a worker's messages: only news of its own attempt."""

from __future__ import annotations

from pathlib import Path

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


def test_a_worker_runs_a_job_on_the_stack_and_image_inputs_of_its_folder(tmp_path: Path) -> None:
    """A mixed repository's share carries each placed stack with its image inputs; a job
    names its task's folder, and the worker picks that stack (the primary by default)."""
    from pathlib import PurePosixPath

    from karma.config import KarmaConfig
    from karma.executor.worker import BuildShare
    from karma.layout import detect_layout
    from karma.sandbox.images import read_inputs

    (tmp_path / "web").mkdir()
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'a'\n")
    (tmp_path / "web" / "package.json").write_text('{"name": "web"}')
    python, web = detect_layout(["pyproject.toml", "web/package.json"]).placed
    at_root = read_inputs("python", tmp_path)
    in_web = read_inputs("node", tmp_path, folder=PurePosixPath("web"))
    share = BuildShare(KarmaConfig(), python.stack, at_root, "base", b"",
                       placed=(("web", web.stack, in_web),))  # fmt: skip
    assert share.stack_in("web") == (web.stack, in_web)
    assert share.stack_in(".") == (python.stack, at_root)
    assert dict(in_web.deps) == {"package.json": b'{"name": "web"}'}
