"""Both real SDKs against the loopback server: text, tool calls, tool results, usage, cost."""

from __future__ import annotations

import json
from typing import Any

import pytest

from karma.models.interface import (
    ModelRequest,
    ToolResult,
    ToolSpec,
    Usage,
    UserMessage,
)
from karma.models.pricing import cost_usd
from karma.models.script import parse_script
from karma.recipes import load_prices
from karma.testing.model_server import ModelServer

MODELS = {"anthropic": "anthropic:claude-sonnet-4-5", "openai": "openai:gpt-5"}
Connect = Any

PLAN_TOOL = ToolSpec(
    "submit_plan",
    "Submit the plan.",
    {"type": "object", "properties": {"tasks": {"type": "array"}}, "required": ["tasks"]},
)
READ_TOOL = ToolSpec("read_file", "Read a file.", {"type": "object", "properties": {}})

SCRIPT = parse_script(
    {
        "conversations": [
            {
                "name": "plan",
                "match": {"tool": "submit_plan"},
                "replies": [
                    {
                        "text": "Here is the plan.",
                        "tool_calls": [
                            {"name": "submit_plan", "arguments": {"tasks": [{"id": "api"}]}}
                        ],
                        "usage": {
                            "input_tokens": 1000,
                            "output_tokens": 200,
                            "cache_read_tokens": 500,
                            "cache_write_tokens": 300,
                        },
                    },
                    {"text": "Plan submitted."},
                ],
            },
            {"name": "chat", "replies": [{"text": "Hello there."}]},
        ]
    }
)


def _ask(text: str, tools: tuple[ToolSpec, ...] = ()) -> ModelRequest:
    return ModelRequest("You are the planner.", (UserMessage(text),), tools, max_tokens=512)


def test_plain_text(model_server: ModelServer, connect: Connect, provider: str) -> None:
    model_server.set_script(SCRIPT)
    reply = connect().client.complete(_ask("Say hello"))
    assert reply.text == "Hello there."
    assert reply.tool_calls == ()
    assert reply.stop_reason == "end_turn"
    assert reply.model == MODELS[provider]
    assert reply.usage.input_tokens > 0 and reply.usage.output_tokens > 0
    assert reply.cost_usd > 0
    assert reply.latency_s > 0
    assert reply.raw  # the provider's JSON, for the record


def test_tool_calls_and_results_round_trip(
    model_server: ModelServer, connect: Connect, provider: str
) -> None:
    model_server.set_script(SCRIPT)
    client = connect().client
    first = _ask("Add a /health endpoint", (PLAN_TOOL, READ_TOOL))
    reply = client.complete(first)
    assert reply.stop_reason == "tool_use"
    assert reply.text == "Here is the plan."
    [call] = reply.tool_calls
    assert (call.id, call.name, call.arguments) == (
        "call_0_0_0",
        "submit_plan",
        {"tasks": [{"id": "api"}]},
    )

    follow = ModelRequest(
        first.system,
        (
            *first.messages,
            reply.as_message(),
            UserMessage("", (ToolResult(call.id, "plan accepted"), ToolResult("x", "boom", True))),
        ),
        first.tools,
    )
    second = client.complete(follow)
    assert second.text == "Plan submitted."
    assert second.stop_reason == "end_turn"

    body = model_server.requests[-1].body
    if provider == "anthropic":
        results = body["messages"][-1]["content"]
        assert results[0]["type"] == "tool_result"
        assert results[0]["tool_use_id"] == call.id and results[0]["content"] == "plan accepted"
        assert results[1]["is_error"] is True
        assert body["messages"][1]["content"][1]["type"] == "tool_use"
    else:
        tool_messages = [m for m in body["messages"] if m["role"] == "tool"]
        assert [m["tool_call_id"] for m in tool_messages] == [call.id, "x"]
        assistant = next(m for m in body["messages"] if m["role"] == "assistant")
        arguments = assistant["tool_calls"][0]["function"]["arguments"]
        assert json.loads(arguments) == {"tasks": [{"id": "api"}]}


def test_usage_normalised_and_priced(
    model_server: ModelServer, connect: Connect, provider: str
) -> None:
    model_server.set_script(SCRIPT)
    reply = connect().client.complete(_ask("plan it", (PLAN_TOOL,)))
    if provider == "anthropic":
        # Anthropic reports input without the cached part, and cache writes apart.
        assert reply.usage == Usage(1000, 200, 500, 300)
    else:
        # OpenAI's prompt_tokens include cached tokens (subtracted here); it has no cache writes.
        assert reply.usage == Usage(1300, 200, 500, 0)
    price = load_prices().price(MODELS[provider])
    assert price is not None
    expected = (
        reply.usage.input_tokens * price.input
        + reply.usage.output_tokens * price.output
        + reply.usage.cache_read_tokens * price.cache_read
        + reply.usage.cache_write_tokens * price.cache_write
    ) / 1e6
    assert reply.cost_usd == pytest.approx(expected)


def test_unknown_model_costs_nothing() -> None:
    assert cost_usd("anthropic:no-such-model", Usage(1000, 1000)) == 0.0


def test_anthropic_marks_the_stable_prefix_for_caching(
    model_server: ModelServer, make_client: Any, secret: str
) -> None:
    model_server.set_script(SCRIPT)
    make_client(MODELS["anthropic"]).client.complete(_ask("plan it", (READ_TOOL, PLAN_TOOL)))
    body = model_server.requests[-1].body
    assert body["system"] == [
        {"type": "text", "text": "You are the planner.", "cache_control": {"type": "ephemeral"}}
    ]
    # Tools come before the system prompt: its breakpoint caches both.
    assert all("cache_control" not in tool for tool in body["tools"])
    assert body["messages"][-1]["content"][-1]["cache_control"] == {"type": "ephemeral"}
    headers = model_server.requests[-1].headers
    assert secret in headers.get("x-api-key", "") + headers.get("authorization", "")


def test_openai_puts_the_system_prompt_first(model_server: ModelServer, make_client: Any) -> None:
    model_server.set_script(SCRIPT)
    make_client(MODELS["openai"]).client.complete(_ask("plan it", (PLAN_TOOL,)))
    body = model_server.requests[-1].body
    assert body["messages"][0] == {"role": "system", "content": "You are the planner."}
    assert body["tools"][0]["function"]["name"] == "submit_plan"
    assert body["max_completion_tokens"] == 512


def test_forced_tool_choice(model_server: ModelServer, connect: Connect, provider: str) -> None:
    model_server.set_script(SCRIPT)
    request = ModelRequest("s", (UserMessage("plan"),), (PLAN_TOOL,), tool_choice="submit_plan")
    connect().client.complete(request)
    choice = model_server.requests[-1].body["tool_choice"]
    if provider == "anthropic":
        assert choice == {"type": "tool", "name": "submit_plan"}
    else:
        assert choice == {"type": "function", "function": {"name": "submit_plan"}}
