"""Prompt caching through both SDKs: what the backends send, what the loopback server
reports for repeated prefixes, and what the usage records."""

from __future__ import annotations

import itertools
from typing import Any

from karma.models.interface import AssistantMessage, ModelRequest, ToolCall, ToolResult, UserMessage
from karma.testing.model_server import ModelServer
from karma.tools import TOOLS

MODELS = {"anthropic": "anthropic:claude-sonnet-4-5", "openai": "openai:gpt-5"}
BRIEF = UserMessage("Task api: " + "the brief. " * 600)


def step(n: int) -> list[Any]:
    return [
        AssistantMessage(f"step {n}", (ToolCall(f"c{n}", "read_file", {"path": "a"}),)),
        UserMessage(tool_results=(ToolResult(f"c{n}", f"output {n} " * 300),)),
    ]


def requests(steps: int) -> list[ModelRequest]:
    out, messages = [], [BRIEF]
    for n in range(steps):
        out.append(ModelRequest("system " * 50, tuple(messages), TOOLS))
        messages += step(n)
    return out


def test_each_step_reads_the_previous_one_from_the_cache(
    model_server: ModelServer, make_client: Any, provider: str
) -> None:
    client = make_client(MODELS[provider]).client
    usages = [client.complete(r).usage for r in requests(5)]
    assert usages[0].cache_read_tokens == 0
    for before, after in itertools.pairwise(usages):
        assert after.cache_read_tokens >= before.total_in * 0.9  # the whole previous prompt
    if provider == "anthropic":
        assert usages[0].cache_write_tokens > 0  # written for the next step
    read = sum(u.cache_read_tokens for u in usages[1:])
    assert read / sum(u.total_in for u in usages[1:]) > 0.6


def test_the_cache_is_cold_for_another_prefix(
    model_server: ModelServer, make_client: Any, provider: str
) -> None:
    client = make_client(MODELS[provider]).client
    client.complete(requests(2)[1])
    other = ModelRequest("another system " * 50, requests(2)[1].messages, TOOLS)
    assert client.complete(other).usage.cache_read_tokens == 0


def test_openai_sends_one_prompt_cache_key_per_attempt(
    model_server: ModelServer, make_client: Any
) -> None:
    client = make_client(MODELS["openai"]).client
    for request in requests(3):
        client.complete(request)
    client.complete(ModelRequest("system " * 50, (UserMessage("Task db: another"),)))
    keys = [r.body["prompt_cache_key"] for r in model_server.requests]
    assert keys[0] == keys[1] == keys[2] != keys[3] and keys[0].startswith("karma-")


def test_anthropic_breakpoints_at_most_four_newest_turn_and_cache_points(
    model_server: ModelServer, make_client: Any
) -> None:
    client = make_client(MODELS["anthropic"]).client
    request = requests(6)[5]
    request = ModelRequest(request.system, request.messages, TOOLS, cache_points=(2, 6))
    client.complete(request)
    body = model_server.requests[-1].body
    marked = [i for i, m in enumerate(body["messages"])
              if any("cache_control" in b for b in m["content"])]  # fmt: skip
    assert marked == [2, 6, len(body["messages"]) - 1]
    assert "cache_control" in body["system"][-1]


def test_a_server_without_caching_counts_the_same_tokens_and_reads_none(provider: str) -> None:
    from karma.config import KarmaConfig
    from karma.models import get_model

    with ModelServer(prompt_cache=False) as cold:
        urls = {"anthropic": cold.anthropic_base_url, "openai": cold.openai_base_url}
        config = KarmaConfig.model_validate({"providers": {provider: {"base_url": urls[provider]}}})
        client = get_model(MODELS[provider], config, environ={"ANTHROPIC_API_KEY": "k",
                                                              "OPENAI_API_KEY": "k"})  # fmt: skip
        usages = [client.complete(r).usage for r in requests(3)]
    assert all(u.cache_read_tokens == u.cache_write_tokens == 0 for u in usages)
    assert usages[2].input_tokens > usages[1].input_tokens > 0
