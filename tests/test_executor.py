"""What the coordinator takes from a worker's messages (only news of its own attempt), and
an attempt's work (`do_work`) with its sandbox starting while the model thinks, and its
checks running while the model thinks of the next reply."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from karma.events import Event, EventBus
from karma.executor.remote import relay
from karma.executor.unit import WorkEnd
from karma.models.interface import ModelReply, ModelRequest
from karma.sandbox.fake import FakeSandbox
from karma.sandbox.interface import (
    ExecResult,
    Sandbox,
    SandboxError,
    SandboxSpec,
    SandboxUnavailable,
)
from karma.workspace import Staged


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


# -- do_work: the sandbox starts while the model thinks -------------------------------


class ToldModel:
    """The scripted model, telling when it was first asked."""

    def __init__(self, replies: list[dict[str, object]]) -> None:
        from karma.models.script import parse_script
        from karma.models.scripted import ScriptedModel

        script = parse_script({"conversations": [{"match": {"user": ["Task t1:"]},
                                                  "replies": replies}]})  # fmt: skip
        self.inner = ScriptedModel("small", script, sleep=lambda _s: None)
        self.name = self.inner.name
        self.asked = threading.Event()

    def complete(self, request: ModelRequest) -> ModelReply:
        self.asked.set()
        return self.inner.complete(request)


class CannedSandbox(FakeSandbox):
    """Runs nothing; the install command exits `install_exit`."""

    def __init__(self, spec: SandboxSpec, install_exit: int = 0) -> None:
        super().__init__(spec)
        self.install_exit = install_exit

    def exec(self, command: str, *, timeout_s: float, workdir: str | None = None) -> ExecResult:
        self.commands.append(command)
        if "pip install" in command:
            return ExecResult(command, self.install_exit, "ERROR: no build backend\n", 0.1)
        return ExecResult(command, 0, "1 passed\n", 0.1)


def _work(tmp_path: Path, model: ToldModel, start: Callable[[], Sandbox], *,
          stage: Callable[[], Staged] = lambda: Staged(("part.py",), "tree-1"),
          ahead: bool = True) -> WorkEnd:  # fmt: skip
    from karma.config import KarmaConfig
    from karma.conversation import Brief
    from karma.executor.unit import WorkLimits, do_work
    from karma.footprint import Footprint
    from karma.recipes import load_stacks

    (tmp_path / "pyproject.toml").write_text("[build-system]\nrequires = []\n")
    stack = next(s for s in load_stacks() if s.name == "python")
    config = KarmaConfig.model_validate({"checks": {"ahead": ahead}})
    return do_work(Brief("t1", "Part", "Add part.py.", "Parts", 1), model, start, tmp_path,
                   stage=stage, stack=stack, config=config,
                   limits=WorkLimits(60.0), footprint=Footprint(tmp_path, 100),
                   stop=threading.Event(), on_step=lambda *_: None)  # fmt: skip


def _spec(tmp_path: Path) -> SandboxSpec:
    from karma.config import KarmaConfig
    from karma.sandbox import spec_from_config

    return spec_from_config(KarmaConfig(), image="karma/fake", workspace=tmp_path,
                            run_id="run-1", task_id="t1")  # fmt: skip


WRITE_AND_FINISH: list[dict[str, object]] = [
    {"tool_calls": [{"name": "write_file", "arguments": {"path": "part.py", "content": "P=1\n"}}]},
    {"tool_calls": [{"name": "finish", "arguments": {"summary": "done"}}]},
]


def test_the_sandbox_starts_while_the_model_thinks_and_no_tool_runs_before_it_is_ready(
    tmp_path: Path,
) -> None:
    model = ToldModel(WRITE_AND_FINISH)
    seen: list[str] = []

    def start() -> Sandbox:
        seen.append(f"model asked before the sandbox was up: {model.asked.wait(5)}")
        time.sleep(0.2)  # a slow start: the reply's tool must wait for it
        seen.append(f"part.py written before the sandbox was up: {(tmp_path / 'part.py').exists()}")
        return CannedSandbox(_spec(tmp_path))

    work = _work(tmp_path, model, start)
    assert work.status == "finished" and work.ran_agent, work
    assert seen == ["model asked before the sandbox was up: True",
                    "part.py written before the sandbox was up: False"]  # fmt: skip
    assert (tmp_path / "part.py").read_text() == "P=1\n"


def test_a_failed_install_ends_the_attempt_as_the_install_after_one_reply_charged(
    tmp_path: Path,
) -> None:
    boxes: list[CannedSandbox] = []

    def start() -> Sandbox:
        boxes.append(CannedSandbox(_spec(tmp_path), install_exit=1))
        return boxes[-1]

    work = _work(tmp_path, ToldModel(WRITE_AND_FINISH), start)
    assert work.status == "failed" and work.detail.startswith("installing the project: failed")
    assert work.evidence is not None and work.evidence.step == "install"
    assert work.ran_agent and work.usage.output_tokens > 0  # the one reply is charged
    assert not (tmp_path / "part.py").exists()  # its tool never ran
    assert len(boxes[0].commands) == 1  # the install alone: no check ran


def test_an_engine_lost_as_the_sandbox_starts_stops_the_build_with_the_reply_charged(
    tmp_path: Path,
) -> None:
    def start() -> Sandbox:
        raise SandboxUnavailable("the Docker engine is not reachable")

    work = _work(tmp_path, ToldModel(WRITE_AND_FINISH), start)
    assert work.status == "interrupted" and isinstance(work.error, SandboxUnavailable)
    assert work.ran_agent and work.usage.output_tokens > 0


def test_another_sandbox_error_is_the_attempts_failure(tmp_path: Path) -> None:
    def start() -> Sandbox:
        raise SandboxError("workspace /x is not a directory")

    work = _work(tmp_path, ToldModel(WRITE_AND_FINISH), start)
    assert work.status == "failed" and work.detail == "workspace /x is not a directory"
    assert work.evidence is not None and work.evidence.step == "agent"


# -- do_work: the checks run while the model thinks of its next reply -----------------


def _checks(box: CannedSandbox) -> list[str]:
    return [c for c in box.commands if "py_compile" in c or "pytest" in c]


def test_the_checks_run_while_the_model_thinks_and_stand_for_the_tree_staged_at_finish(
    tmp_path: Path,
) -> None:
    box = CannedSandbox(_spec(tmp_path))
    work = _work(tmp_path, ToldModel(WRITE_AND_FINISH), lambda: box)
    assert work.status == "finished" and work.checked_ahead, work
    assert work.changed == ("part.py",)
    assert _checks(box) == ["python -m py_compile part.py",
                            "python -m pytest -q -p no:cacheprovider"]  # once, not twice


def test_a_tree_changed_behind_the_tools_back_is_checked_again_at_finish(tmp_path: Path) -> None:
    """A process the model left running in the sandbox changes a file after the checks
    ran ahead: no tool call says so, but the staged tree differs, and that tree is what
    the checks judge."""
    trees = iter(["tree-as-checked-ahead", "tree-changed-by-a-background-process"])
    box = CannedSandbox(_spec(tmp_path))
    work = _work(tmp_path, ToldModel(WRITE_AND_FINISH), lambda: box,
                 stage=lambda: Staged(("part.py",), next(trees)))  # fmt: skip
    assert work.status == "finished" and not work.checked_ahead, work
    assert len(_checks(box)) == 4  # ahead, then again on the tree at finish


def test_with_checks_ahead_off_the_checks_run_once_after_finish(tmp_path: Path) -> None:
    box = CannedSandbox(_spec(tmp_path))
    work = _work(tmp_path, ToldModel(WRITE_AND_FINISH), lambda: box, ahead=False)
    assert work.status == "finished" and not work.checked_ahead
    assert len(_checks(box)) == 2


def test_a_reply_that_changes_nothing_runs_no_checks_ahead(tmp_path: Path) -> None:
    replies: list[dict[str, object]] = [
        {"tool_calls": [{"name": "list_files", "arguments": {"path": "."}}]},
        {"tool_calls": [{"name": "finish", "arguments": {"summary": "nothing to do"}}]},
    ]
    box = CannedSandbox(_spec(tmp_path))
    work = _work(tmp_path, ToldModel(replies), lambda: box, stage=lambda: Staged((), "base"))
    assert work.status == "finished" and not work.checked_ahead
    assert _checks(box) == ["python -m pytest -q -p no:cacheprovider"]  # after finish only


def test_a_run_that_changes_no_file_does_not_run_the_checks_again(tmp_path: Path) -> None:
    """The same staged tree is checked once: the run's verdict stands (a flaky test that
    failed there is not made to pass by running it until it does)."""
    replies: list[dict[str, object]] = [
        WRITE_AND_FINISH[0],
        {"tool_calls": [{"name": "run", "arguments": {"command": "ls"}}]},
        WRITE_AND_FINISH[1],
    ]
    box = CannedSandbox(_spec(tmp_path))
    work = _work(tmp_path, ToldModel(replies), lambda: box)
    assert work.status == "finished" and work.checked_ahead, work
    assert len(_checks(box)) == 2


class SlowChecksSandbox(CannedSandbox):
    """Its test suite takes longer than the model's replies."""

    def __init__(self, spec: SandboxSpec) -> None:
        super().__init__(spec)
        self.tested = threading.Event()

    def exec(self, command: str, *, timeout_s: float, workdir: str | None = None) -> ExecResult:
        if "pytest" in command:
            time.sleep(0.2)
            self.tested.set()
        return super().exec(command, timeout_s=timeout_s, workdir=workdir)


class WaitingModel(ToldModel):
    """Its second reply comes once the sandbox has run the tests (the run ahead ended);
    the others at once."""

    def __init__(self, replies: list[dict[str, object]], box: SlowChecksSandbox) -> None:
        super().__init__(replies)
        self.box, self.calls = box, 0

    def complete(self, request: ModelRequest) -> ModelReply:
        self.calls += 1
        if self.calls == 2:
            assert self.box.tested.wait(5)
            time.sleep(0.05)  # the run ahead has recorded how long it took
        return super().complete(request)


def test_checks_slower_than_the_model_are_not_run_ahead_again(tmp_path: Path) -> None:
    """After a run ahead that took longer than the model's reply, the next change waits
    for `finish`: a run still under way would share the sandbox with the reply's tools."""
    replies: list[dict[str, object]] = [
        WRITE_AND_FINISH[0],
        {"tool_calls": [{"name": "list_files", "arguments": {"path": "."}}]},
        {"tool_calls": [{"name": "write_file", "arguments": {"path": "part.py", "content": "2"}}]},
        WRITE_AND_FINISH[1],
    ]
    box = SlowChecksSandbox(_spec(tmp_path))
    part = tmp_path / "part.py"
    work = _work(tmp_path, WaitingModel(replies, box), lambda: box,
                 stage=lambda: Staged(("part.py",), part.read_text()))  # fmt: skip
    assert work.status == "finished" and not work.checked_ahead, work
    assert len(_checks(box)) == 4  # ahead on P=1 (the first is tried), at finish on 2
