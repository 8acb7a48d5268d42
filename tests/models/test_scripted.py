"""The model script: matching, stateless selection, exhaustion, and both of its players."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from karma.config import KarmaConfig
from karma.errors import ConfigError
from karma.models import get_model
from karma.models.interface import (
    AssistantMessage,
    BadRequest,
    ModelRequest,
    ScriptExhausted,
    ToolResult,
    ToolSpec,
    UserMessage,
)
from karma.models.script import load_script, parse_script
from karma.models.scripted import ScriptedModel
from karma.testing.model_server import ModelServer

SCRIPT_YAML = """
conversations:
  - name: plan
    match:
      tool: submit_plan
      user: ["Add a /health"]
      system: planner
    replies:
      - text: "Here is the plan."
        tool_calls:
          - name: submit_plan
            arguments: {tasks: [{id: api}]}
        usage: {input_tokens: 1200, output_tokens: 300}
  - name: api retry
    match: {user: ["Task api:", "Attempt 2"]}
    replies:
      - text: "second try"
  - name: api
    match: {user: "Task api:"}
    replies:
      - tool_calls: [{name: run, arguments: {cmd: pytest}}, {name: run, arguments: {cmd: ls}}]
        latency_s: 0.25
      - text: "done"
"""

PLAN = ToolSpec("submit_plan", "", {"type": "object"})
RUN = ToolSpec("run", "", {"type": "object"})


@pytest.fixture
def script_file(tmp_path: Path) -> Path:
    path = tmp_path / "script.yaml"
    path.write_text(SCRIPT_YAML)
    return path


def _task(attempt: int, *history: Any) -> ModelRequest:
    first = UserMessage(f"Task api: Add the endpoint\nAttempt {attempt}\n")
    return ModelRequest("You are a coder.", (first, *history), (RUN,))


def test_matching_is_first_fit_in_file_order(script_file: Path) -> None:
    sleeps: list[float] = []
    model = ScriptedModel("small", script_file, sleep=sleeps.append)
    assert model.complete(_task(2)).text == "second try"
    reply = model.complete(_task(1))
    assert [c.id for c in reply.tool_calls] == ["call_2_0_0", "call_2_0_1"]
    assert reply.stop_reason == "tool_use"
    assert sleeps == [0.25]


def test_all_selectors_must_fit(script_file: Path) -> None:
    model = ScriptedModel("small", script_file)
    plan = ModelRequest("You are the planner.", (UserMessage("Add a /health endpoint"),), (PLAN,))
    reply = model.complete(plan)
    assert reply.text == "Here is the plan."
    assert reply.tool_calls[0].arguments == {"tasks": [{"id": "api"}]}
    assert (reply.usage.input_tokens, reply.usage.output_tokens) == (1200, 300)
    for wrong in (
        ModelRequest("You are the reviewer.", plan.messages, plan.tools),
        ModelRequest(plan.system, (UserMessage("Remove /health"),), plan.tools),
        ModelRequest(plan.system, plan.messages, ()),
    ):
        with pytest.raises(ScriptExhausted, match="no script conversation matches"):
            model.complete(wrong)


def test_selection_is_stateless(script_file: Path) -> None:
    model = ScriptedModel("small", script_file)
    first = model.complete(_task(1))
    history = (first.as_message(), UserMessage("", (ToolResult("call_2_0_0", "ok"),)))
    # the same request twice gets the same reply; the history decides the index
    assert model.complete(_task(1, *history)).text == "done"
    assert model.complete(_task(1, *history)).text == "done"
    assert model.complete(_task(1)).tool_calls == first.tool_calls


def test_exhaustion_names_the_conversation_and_first_line(script_file: Path) -> None:
    model = ScriptedModel("small", script_file)
    history = (
        AssistantMessage("a"),
        UserMessage("b"),
        AssistantMessage("c"),
        UserMessage("d"),
    )
    with pytest.raises(
        ScriptExhausted, match=r"api has 2 replies; reply 3.*Task api: Add the endpoint"
    ):
        model.complete(_task(1, *history))


def test_defaults_estimate_usage_and_stop_reason() -> None:
    script = parse_script({"conversations": [{"replies": [{"text": "x" * 40}]}]})
    reply = ScriptedModel("small", script).complete(ModelRequest("s" * 400, (UserMessage("u"),)))
    assert reply.stop_reason == "end_turn"
    assert reply.usage.output_tokens == 10
    assert reply.usage.input_tokens == 100


def test_unknown_keys_fail_loudly(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("conversations:\n  - replies:\n      - txt: hello\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: conversations.0.replies.0.txt: unknown key"):
        load_script(path)


def test_json_scripts_load(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text('{"conversations": [{"replies": [{"text": "hi"}]}]}')
    assert load_script(path).conversations[0].replies[0].text == "hi"


def test_scripted_through_get_model_is_priced(script_file: Path) -> None:
    config = KarmaConfig.model_validate({"providers": {"scripted": {"script": str(script_file)}}})
    client = get_model("scripted:medium", config, environ={}, sleep=lambda _: None)
    reply = client.complete(ModelRequest("planner", (UserMessage("Add a /health x"),), (PLAN,)))
    assert reply.model == "scripted:medium"
    assert reply.cost_usd == pytest.approx((1200 * 3.0 + 300 * 15.0) / 1e6)
    with pytest.raises(ScriptExhausted):
        client.complete(ModelRequest("x", (UserMessage("nothing matches"),)))


def test_server_plays_the_same_script(
    model_server: ModelServer, make_client: Any, script_file: Path
) -> None:
    model_server.set_script(script_file)
    local = ScriptedModel("small", script_file, sleep=lambda _: None)
    for name in ("anthropic:x", "openai:x"):
        remote = make_client(name).client.complete(_task(1))
        assert remote.tool_calls == local.complete(_task(1)).tool_calls
        assert remote.stop_reason == "tool_use"


def test_server_says_which_request_it_has_no_reply_for(
    model_server: ModelServer, make_client: Any, script_file: Path
) -> None:
    model_server.set_script(script_file)
    with pytest.raises(BadRequest, match="Nothing scripted for this"):
        make_client("anthropic:x").client.complete(
            ModelRequest("s", (UserMessage("Nothing scripted for this\nsecond line"),))
        )
    assert len(model_server.requests) == 1
