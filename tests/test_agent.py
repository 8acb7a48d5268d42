"""The agent loop with the scripted model: tools, finish, limits, and being stuck."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

from karma.agent import run_agent
from karma.config import AgentConfig
from karma.conversation import Brief, first_message
from karma.footprint import Footprint
from karma.models.script import parse_script
from karma.models.scripted import ScriptedModel
from karma.sandbox.interface import ExecResult
from karma.tools import Toolbox


class CannedRunner:
    def __init__(self) -> None:
        self.commands: list[str] = []

    def __call__(self, command: str, time_left: float = 0.0) -> ExecResult:
        self.commands.append(command)
        return ExecResult(command, 0, "1 passed", 0.2)


BRIEF = Brief(
    "api",
    "Create the API",
    "Add app/api.py.",
    "Add an API",
    attempt=1,
    plan_notes="- db (Create the DB), done",
    hints=("add type annotations",),
)


def model(replies: list[dict[str, Any]]) -> ScriptedModel:
    script = parse_script(
        {"conversations": [{"match": {"user": ["Task api:"]}, "replies": replies}]}
    )
    return ScriptedModel("small", script, sleep=lambda _s: None)


def call(name: str, **arguments: Any) -> dict[str, Any]:
    return {"tool_calls": [{"name": name, "arguments": arguments}]}


def test_first_message_contract() -> None:
    text = first_message(BRIEF)
    assert text.startswith("Task api: Create the API\nAttempt 1\n")
    assert "add type annotations" in text and "Add an API" in text and "db (Create the DB)" in text


def test_runs_tools_until_finish(tmp_path: Path) -> None:
    runner = CannedRunner()
    box = Toolbox(tmp_path, runner, output_chars=1000)
    replies = [
        call("write_file", path="app/api.py", content="X = 1\n"),
        call("run", command="pytest -q"),
        call("finish", summary="API added"),
    ]
    steps: list[str] = []
    result = run_agent(
        BRIEF,
        model(replies),
        box,
        AgentConfig(),
        stop=threading.Event(),
        on_step=lambda n, tool, *_: steps.append(tool),
    )
    assert result.status == "finished" and result.summary == "API added"
    assert (tmp_path / "app" / "api.py").read_text() == "X = 1\n"
    assert runner.commands == ["pytest -q"]
    assert steps == ["write_file", "run", "finish"] and result.steps == 3
    assert result.usage.output_tokens > 0


def test_identical_action_three_times_is_stuck(tmp_path: Path) -> None:
    box = Toolbox(tmp_path, CannedRunner(), output_chars=1000)
    replies = [call("read_file", path="missing.py")] * 5
    result = run_agent(BRIEF, model(replies), box, AgentConfig(), stop=threading.Event())
    assert result.status == "stuck" and result.steps == 3


def test_step_limit(tmp_path: Path) -> None:
    box = Toolbox(tmp_path, CannedRunner(), output_chars=1000)
    replies = [call("write_file", path=f"f{i}.py", content="x") for i in range(10)]
    result = run_agent(BRIEF, model(replies), box, AgentConfig(max_steps=4), stop=threading.Event())
    assert result.status == "limit" and "step limit" in result.detail


def test_script_exhausted_is_a_provider_error_result(tmp_path: Path) -> None:
    box = Toolbox(tmp_path, CannedRunner(), output_chars=1000)
    result = run_agent(
        BRIEF, model([call("list_files", path=".")]), box, AgentConfig(), stop=threading.Event()
    )
    assert result.status == "provider_error"


def test_stop_event_interrupts(tmp_path: Path) -> None:
    stop = threading.Event()
    stop.set()
    box = Toolbox(tmp_path, CannedRunner(), output_chars=1000)
    result = run_agent(BRIEF, model([call("finish", summary="x")]), box, AgentConfig(), stop=stop)
    assert result.status == "interrupted" and result.steps == 0


class SlowRunner:
    """A sandbox whose commands take `seconds` each (or the time they are given, if less)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.limits: list[float] = []

    def __call__(self, command: str, time_left: float) -> ExecResult:
        self.limits.append(time_left)
        time.sleep(min(self.seconds, time_left))
        return ExecResult(command, 0, "ok", min(self.seconds, time_left))


def many(name: str, count: int, **arguments: Any) -> dict[str, Any]:
    return {"tool_calls": [{"name": name, "arguments": {k: v.format(i=i) for k, v in
                                                        arguments.items()}}
                           for i in range(count)]}  # fmt: skip


def test_tool_calls_per_reply_are_capped_and_the_rest_answered(tmp_path: Path) -> None:
    box = Toolbox(tmp_path, CannedRunner(), output_chars=1000)
    replies = [many("write_file", 20, path="f{i}.py", content="x = {i}\n"),
               call("finish", summary="done")]  # fmt: skip
    steps: list[tuple[str, str, bool]] = []
    result = run_agent(
        BRIEF,
        model(replies),
        box,
        AgentConfig(max_tool_calls_per_reply=16),
        stop=threading.Event(),
        on_step=lambda n, tool, args, out, err: steps.append((tool, out, err)),
    )
    assert result.status == "finished"
    assert sorted(p.name for p in tmp_path.glob("f*.py")) == sorted(f"f{i}.py" for i in range(16))
    refused = [out for tool, out, err in steps if err]
    assert len(refused) == 4 and all("at most 16 tool calls" in out for out in refused)
    assert len(steps) == 21  # every call of the reply is recorded, the refused ones too


def test_wall_time_holds_across_many_runs_in_one_reply(tmp_path: Path) -> None:
    runner = SlowRunner(0.4)
    box = Toolbox(tmp_path, runner, output_chars=1000)
    replies = [many("run", 12, command="sleep 10 # {i}"), call("finish", summary="done")]
    steps: list[tuple[str, str, bool]] = []
    started = time.monotonic()
    result = run_agent(
        BRIEF,
        model(replies),
        box,
        AgentConfig(max_wall_s=1.0),
        stop=threading.Event(),
        on_step=lambda n, tool, args, out, err: steps.append((tool, out, err)),
    )
    spent = time.monotonic() - started
    assert result.status == "limit" and "wall-time limit" in result.detail
    assert spent < 1.6  # not 12 x 0.4 s
    assert 1 <= len(runner.limits) <= 3
    assert all(limit <= 1.0 for limit in runner.limits)  # each run got at most the time left
    assert runner.limits == sorted(runner.limits, reverse=True)
    assert len(steps) == 12 and sum("not run" in out for _, out, _ in steps) >= 9


def test_worktree_past_its_limit_ends_the_attempt(tmp_path: Path) -> None:
    class Fill:
        def __call__(self, command: str, time_left: float) -> ExecResult:
            (tmp_path / "dump.bin").write_bytes(os.urandom(24 * 1024 * 1024))
            return ExecResult(command, 0, "", 0.1)

    box = Toolbox(tmp_path, Fill(), output_chars=1000, footprint=Footprint(tmp_path, 4))
    replies = [{"tool_calls": [{"name": "run", "arguments": {"command": "make dump"}},
                               {"name": "write_file", "arguments": {"path": "x.py",
                                                                    "content": "x"}}]},
               call("finish", summary="done")]  # fmt: skip
    steps: list[tuple[str, str, bool]] = []
    result = run_agent(
        BRIEF,
        model(replies),
        box,
        AgentConfig(),
        stop=threading.Event(),
        on_step=lambda n, tool, args, out, err: steps.append((tool, out, err)),
    )
    assert result.status == "limit" and "agent.max_worktree_mb" in result.detail
    assert steps[0][2] and "this attempt fails" in steps[0][1]
    assert steps[1][1].startswith("not run:") and not (tmp_path / "x.py").exists()


GOLDEN = Path(__file__).parent / "golden" / "prompts" / "agent_first_request.txt"


def test_rendered_agent_prompt_is_golden() -> None:
    """Regenerate with KARMA_UPDATE_GOLDEN=1 after a deliberate prompt change."""
    import os

    from karma.conversation import SYSTEM
    from karma.tools import TOOLS

    tools = "\n".join(f"{t.name}: {sorted(t.input_schema['properties'])}" for t in TOOLS)
    rendered = (
        f"--- system ---\n{SYSTEM}\n--- tools ---\n{tools}\n--- user ---\n{first_message(BRIEF)}\n"
    )
    if os.environ.get("KARMA_UPDATE_GOLDEN"):
        GOLDEN.write_text(rendered)
    assert rendered == GOLDEN.read_text()


# -- a long attempt: the context window --------------------------------------------------

CORPUS = Path(__file__).parent / "golden" / "failures" / "public" / "test.jsonl"


def long_attempt(
    tmp_path: Path, model_server: Any, elide_at: float, window: int
) -> tuple[Any, list[dict[str, Any]], list[int]]:
    """The 30-step attempt of `karma.testing.long_attempt` through the Anthropic SDK and the
    loopback server; (result, recorded model calls, input tokens the server reported)."""
    from karma.testing.long_attempt import run_long_attempt

    result, calls = run_long_attempt(tmp_path, model_server, CORPUS, elide_at=elide_at,
                                     window=window)  # fmt: skip
    reported = [row["input_tokens"] + row["cache_read_tokens"] + row["cache_write_tokens"]
                for row in calls]  # fmt: skip
    return result, calls, reported


def test_a_30_step_attempt_stays_under_the_threshold_by_elision(
    tmp_path: Path, model_server: Any
) -> None:
    import json

    window = 40_000
    result, calls, reported = long_attempt(tmp_path, model_server, 0.6, window)
    assert (result.status, result.steps) == ("finished", 30), result.detail
    assert result.elided > 0
    assert max(reported) <= 0.6 * window * 1.05  # the provider's own count, not the estimate
    requests = [json.loads(row["request_json"]) for row in calls]
    first = requests[0]
    outputs = [r["content"] for req in requests for m in req["messages"]
               for r in m.get("tool_results", [])]  # fmt: skip
    stubs = {text for text in outputs if text.startswith("[output of ")}
    assert any(s.startswith("[output of run: exit 1, ") and s.endswith(" chars, elided]")
               for s in stubs)  # fmt: skip
    assert any(s.startswith("[output of read_file: ") for s in stubs)
    notes = [note for req in requests for note in req.get("notes", [])]
    assert len([n for n in notes if n.startswith("elided ")]) == result.elided  # each recorded
    for request in requests:  # the stable prefix never changes
        assert (request["system"], request["tools"]) == (first["system"], first["tools"])
        assert request["messages"][0] == first["messages"][0]
        newest = [m for m in request["messages"] if m.get("tool_results")][-2:]
        assert not any(r["content"].startswith("[output of ") for m in newest
                       for r in m["tool_results"])  # fmt: skip
    last = requests[-1]  # the last failing output is kept whole
    failing = [r for m in last["messages"] for r in m.get("tool_results", []) if r["is_error"]]
    assert failing and not failing[-1]["content"].startswith("[output of ")


def test_without_elision_the_same_attempt_grows_past_the_threshold(
    tmp_path: Path, model_server: Any
) -> None:
    result, _calls, reported = long_attempt(tmp_path, model_server, 1.0, 1_000_000)
    assert result.status == "finished" and result.elided == 0
    assert max(reported) > 0.6 * 40_000


class SummarisingModel:
    """Reads a big file each step, writes a summary when asked, finishes after that."""

    name = "scripted:small"

    def __init__(self) -> None:
        self.requests: list[Any] = []

    def complete(self, request: Any) -> Any:
        from karma.models.interface import ModelReply, ToolCall, Usage

        self.requests.append(request)
        n = len(self.requests)
        if request.purpose == "summary":
            return ModelReply("I read the big files; nothing is changed yet.", (),
                              "end_turn", Usage(0, 10), self.name)  # fmt: skip
        if any(r.purpose == "summary" for r in self.requests):
            call = ToolCall(f"f{n}", "finish", {"summary": "done"})
        else:
            call = ToolCall(f"r{n}", "read_file", {"path": f"big{n % 4}.txt"})
        return ModelReply("", (call,), "tool_use", Usage(0, 10), self.name)  # no input figure


def test_past_the_second_threshold_the_attempt_restarts_from_a_summary(tmp_path: Path) -> None:
    for n in range(4):
        (tmp_path / f"big{n}.txt").write_text(f"line of big file {n}\n" * 3000)  # ~14k tokens
    box = Toolbox(tmp_path, CannedRunner(), output_chars=1000)
    model = SummarisingModel()
    result = run_agent(BRIEF, model, box, AgentConfig(), stop=threading.Event(),
                       context_window=30_000)  # fmt: skip
    assert result.status == "finished" and result.summaries == 1
    purposes = [r.purpose for r in model.requests]
    assert purposes.count("summary") == 1 and purposes[-1] == "agent"
    asked = model.requests[purposes.index("summary")]
    assert "summary of your progress" in asked.messages[-1].text
    after = model.requests[purposes.index("summary") + 1]
    assert after.messages[0] == model.requests[0].messages[0]  # the brief, unchanged
    assert "I read the big files" in after.messages[1].text
    assert "line of big file" in after.messages[2].text  # the newest output is carried
    assert any(note.startswith("summarised") for note in after.notes)  # on the record
    assert result.steps == len(model.requests)


def test_a_sandbox_that_never_got_ready_ends_the_attempt_before_any_tool_runs(
    tmp_path: Path,
) -> None:
    """`ready` is asked after the reply, before its tools: a reason ends the attempt
    there, with the one reply counted, and the file the reply wrote is never written."""
    runner = CannedRunner()
    box = Toolbox(tmp_path, runner, output_chars=1000)
    replies = [call("write_file", path="app/api.py", content="X = 1\n"), call("finish")]
    result = run_agent(BRIEF, model(replies), box, AgentConfig(), stop=threading.Event(),
                       ready=lambda: "installing the project: failed")  # fmt: skip
    assert (result.status, result.detail) == ("interrupted", "installing the project: failed")
    assert result.steps == 1 and result.usage.output_tokens > 0
    assert not (tmp_path / "app").exists() and runner.commands == []
