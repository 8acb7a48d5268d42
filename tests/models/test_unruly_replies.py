"""Replies that break the rules, through both real SDKs and the loopback server, into the
agent: each is handled, recorded, and answered with a correction the model sees; none
costs the attempt (issue 15, item 3)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from karma.agent import AgentResult, run_agent
from karma.config import AgentConfig
from karma.conversation import Brief
from karma.models.interface import AssistantMessage, ModelRequest, UserMessage
from karma.models.script import parse_script
from karma.sandbox.interface import ExecResult
from karma.testing.model_server import ModelServer
from karma.testing.model_wire import decode_anthropic, decode_openai
from karma.tools import Toolbox

MODELS = {"anthropic": "anthropic:claude-sonnet-4-5", "openai": "openai:gpt-5"}

BRIEF = Brief("api", "Create the API", "Add app/api.py.", "Add an API", attempt=1)
FINISH = {"tool_calls": [{"name": "finish", "arguments": {"summary": "done"}}]}


class CannedRunner:
    def __init__(self) -> None:
        self.commands: list[str] = []

    def __call__(self, command: str, time_left: float = 0.0) -> ExecResult:
        self.commands.append(command)
        return ExecResult(command, 0, "1 passed", 0.1)


def call(name: str, **arguments: Any) -> dict[str, Any]:
    return {"name": name, "arguments": arguments}


def raw(name: str, text: str) -> dict[str, Any]:
    return {"name": name, "raw_arguments": text}


def attempt(
    server: ModelServer,
    connected: Any,
    root: Path,
    replies: list[dict[str, Any]],
) -> tuple[AgentResult, list[ModelRequest], list[tuple[str, str, bool]]]:
    script = {"conversations": [{"match": {"user": ["Task api:"]}, "replies": replies}]}
    server.set_script(parse_script(script))
    steps: list[tuple[str, str, bool]] = []
    box = Toolbox(root, CannedRunner(), output_chars=1000)
    result = run_agent(
        BRIEF,
        connected.client,
        box,
        AgentConfig(),
        stop=threading.Event(),
        on_step=lambda n, tool, args, out, err: steps.append((tool, out, err)),
    )
    requests = [
        decode_anthropic(r.body) if r.protocol == "anthropic" else decode_openai(r.body)
        for r in server.requests
    ]
    return result, requests, steps


def seen_by_model(request: ModelRequest) -> str:
    """Everything the newest user turn of a request says to the model."""
    last = request.messages[-1]
    assert isinstance(last, UserMessage)
    return last.text + "".join(r.content for r in last.tool_results)


CASES: dict[str, tuple[dict[str, Any], str]] = {
    "cut-off JSON arguments": (
        {"tool_calls": [raw("read_file", '{"path": "app/ap')]},
        "not valid JSON",
    ),
    "arguments encoded twice": (
        {
            "tool_calls": [
                raw("write_file", '"{\\"path\\": \\"twice.py\\", \\"content\\": \\"x\\"}"')
            ]
        },
        "wrote twice.py",
    ),
    "arguments not an object": ({"tool_calls": [raw("run", '["ls"]')]}, "JSON object"),
    "wrong argument types": (
        {"tool_calls": [call("write_file", path=3, content=["x"])]},
        "path must be a string, not a number",
    ),
    "missing arguments": ({"tool_calls": [call("edit_file", path="a.py")]}, "missing old, new"),
    "unknown tool": ({"tool_calls": [call("delete_repo", all=True)]}, "unknown tool"),
    "tool name no provider accepts": (
        {"tool_calls": [call("read file; rm -rf /", path="x")]},
        "unknown tool 'invalid_tool_name'",
    ),
    "empty reply": ({"text": ""}, "Use the tools"),
    "text only": ({"text": "I think the task is easy."}, "Use the tools"),
    "max_tokens in the middle of a tool call": (
        {
            "stop_reason": "max_tokens",
            "tool_calls": [raw("write_file", '{"path": "big.py", "content": "def f(')],
        },
        "cut off at the token limit inside this call",
    ),
    "max_tokens in text": ({"stop_reason": "max_tokens", "text": "Let me expl"}, "cut off"),
    "refusal": (
        {"stop_reason": "refusal", "text": "", "refusal": "I can't help with that."},
        "stopped as a refusal",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_reply_is_answered_and_the_attempt_goes_on(
    case: str, model_server: ModelServer, make_client: Any, provider: str, tmp_path: Path
) -> None:
    bad, correction = CASES[case]
    connected = make_client(MODELS[provider])
    result, requests, steps = attempt(model_server, connected, tmp_path, [bad, FINISH])
    assert result.status == "finished", result.detail
    assert len(requests) == 2  # asked once, answered once: nothing resent
    assert correction in seen_by_model(requests[1])
    for tool, output, error in steps[:-1]:  # every call of the bad reply is on the record
        assert error == (correction != "wrote twice.py"), (tool, output)
    assert not (tmp_path / "big.py").exists()
    assert [p.name for p in tmp_path.iterdir()] in ([], ["twice.py"])


def test_finish_among_several_calls_takes_effect_after_the_others(
    model_server: ModelServer, make_client: Any, provider: str, tmp_path: Path
) -> None:
    reply = {
        "text": "Writing both files, then done.",
        "tool_calls": [
            call("write_file", path="a.py", content="A = 1\n"),
            call("finish", summary="both written"),
            call("write_file", path="b.py", content="B = 2\n"),
        ],
    }
    result, _requests, steps = attempt(model_server, make_client(MODELS[provider]), tmp_path,
                                      [reply])  # fmt: skip
    assert result.status == "finished" and result.summary == "both written"
    assert (tmp_path / "a.py").exists() and (tmp_path / "b.py").exists()
    assert [tool for tool, _, _ in steps] == ["write_file", "finish", "write_file"]


def test_thinking_blocks_go_back_with_their_signatures(
    model_server: ModelServer, make_client: Any, tmp_path: Path
) -> None:
    thinking = {
        "thinking": [{"text": "The API needs a module."}, {"text": "opaque", "redacted": True}]
    }
    replies = [
        {**thinking, "tool_calls": [call("write_file", path="app/api.py", content="X = 1\n")]},
        {**thinking, **FINISH},
    ]
    result, requests, _ = attempt(model_server, make_client(MODELS["anthropic"]), tmp_path,
                                  replies)  # fmt: skip
    assert result.status == "finished", result.detail  # the server refuses a turn without them
    turn = requests[1].messages[1]
    assert isinstance(turn, AssistantMessage)
    assert [t.text for t in turn.thinking] == ["The API needs a module.", "opaque"]
    assert turn.thinking[0].signature and turn.thinking[1].redacted
    body = model_server.requests[1].body["messages"][1]["content"]
    assert [b["type"] for b in body] == ["thinking", "redacted_thinking", "tool_use"]


def test_the_server_refuses_a_thinking_turn_sent_back_without_its_blocks(
    model_server: ModelServer, make_client: Any
) -> None:
    """The check the previous test relies on: what the Anthropic API says."""
    from karma.models.interface import BadRequest, ToolCall, ToolResult

    model_server.set_script(parse_script({"conversations": [{"replies": [
        {"thinking": [{"text": "hm"}], "tool_calls": [call("run", command="ls")]}, {"text": "ok"},
    ]}]}))  # fmt: skip
    turn = AssistantMessage("", (ToolCall("call_0_0_0", "run", {"command": "ls"}),))
    request = ModelRequest(
        "s", (UserMessage("go"), turn, UserMessage(tool_results=(ToolResult("call_0_0_0", "x"),)))
    )
    with pytest.raises(BadRequest, match="thinking"):
        make_client(MODELS["anthropic"], max_retries=0).client.complete(request)


def test_pause_turn_is_sent_back_to_continue_without_a_correction(
    model_server: ModelServer, make_client: Any, tmp_path: Path
) -> None:
    replies = [{"stop_reason": "pause_turn", "text": "Looking at the layout"}, FINISH]
    result, requests, _ = attempt(model_server, make_client(MODELS["anthropic"]), tmp_path,
                                  replies)  # fmt: skip
    assert result.status == "finished"
    last = requests[1].messages[-1]
    assert isinstance(last, AssistantMessage) and last.text == "Looking at the layout"


def test_a_model_that_keeps_breaking_the_rules_ends_in_a_recorded_status(
    model_server: ModelServer, make_client: Any, provider: str, tmp_path: Path
) -> None:
    bad = {"tool_calls": [raw("read_file", '{"path": ')]}
    result, requests, steps = attempt(model_server, make_client(MODELS[provider]), tmp_path,
                                      [bad] * 5)  # fmt: skip
    assert result.status == "stuck" and len(requests) == 3 and len(steps) == 3


def test_refusal_with_tool_calls_runs_none(
    model_server: ModelServer, make_client: Any, provider: str, tmp_path: Path
) -> None:
    bad = {"stop_reason": "refusal", "tool_calls": [call("write_file", path="x.py", content="x")]}
    result, requests, _steps = attempt(model_server, make_client(MODELS[provider]), tmp_path,
                                      [bad, FINISH])  # fmt: skip
    assert result.status == "finished" and not (tmp_path / "x.py").exists()
    assert "refusal" in seen_by_model(requests[1])


def test_a_very_long_reply_is_kept_short_in_the_conversation(
    model_server: ModelServer, make_client: Any, provider: str, tmp_path: Path
) -> None:
    long = {"text": "word " * 20_000}  # 100,000 characters
    result, requests, _ = attempt(model_server, make_client(MODELS[provider]), tmp_path,
                                  [long, FINISH])  # fmt: skip
    assert result.status == "finished"
    kept = requests[1].messages[1]
    assert isinstance(kept, AssistantMessage) and len(kept.text) < 20_100
    assert kept.text.endswith("[... 80,000 more characters]")
