"""The Anthropic backend: Messages API through the official SDK, with prompt caching.

The stable prefix goes first and is marked for caching: the tool definitions, the system
prompt (a block with `cache_control`: tools and system are one cached prefix), then the
conversation, with breakpoints (four at most, as the API allows) on the newest user turn
(written for the next step, which finds it within the API's 20-block lookback), on the
ends of the stretches the agent elided (`cache_points`: what the request after the next
elision still shares), else on the previous user turn and the brief. Extended-thinking
blocks go back verbatim, signatures included. A `tool_use` whose input is not an object
is carried as an *invalid* call for the agent to answer. The SDK's own retries are off
(`max_retries=0`): `retry.py` is the only retry layer.
"""

from __future__ import annotations

from typing import Any

import anthropic

from karma.models.interface import (
    MalformedReply,
    ModelReply,
    ModelRequest,
    StopReason,
    Thinking,
    ToolCall,
    Usage,
    UserMessage,
    read_arguments,
)
from karma.models.sdk import Wire

_CACHE = {"type": "ephemeral"}
_STOP: dict[str, StopReason] = {
    "end_turn": "end_turn",
    "tool_use": "tool_use",
    "max_tokens": "max_tokens",
    "stop_sequence": "stop_sequence",
    "refusal": "refusal",
    "pause_turn": "pause_turn",
}
MAX_BREAKPOINTS = 4


def request_body(model: str, request: ModelRequest) -> dict[str, Any]:
    """The Messages API body of `request` (cache breakpoints included)."""
    messages: list[dict[str, Any]] = []
    for message in request.messages:
        blocks: list[dict[str, Any]] = []
        if isinstance(message, UserMessage):
            blocks.extend(
                {
                    "type": "tool_result",
                    "tool_use_id": result.call_id,
                    "content": result.content,
                    "is_error": result.is_error,
                }
                for result in message.tool_results
            )
            if message.text or not blocks:
                blocks.append({"type": "text", "text": message.text or "(no content)"})
            messages.append({"role": "user", "content": blocks})
        else:
            blocks.extend(_thinking_block(t) for t in message.thinking)
            if message.text:
                blocks.append({"type": "text", "text": message.text})
            blocks.extend(
                {"type": "tool_use", "id": c.id, "name": c.name, "input": dict(c.arguments)}
                for c in message.tool_calls
            )
            messages.append(
                {"role": "assistant", "content": blocks or [{"type": "text", "text": "."}]}
            )
    users = [m for m in messages if m["role"] == "user"]
    points = [messages[i] for i in reversed(request.cache_points) if i < len(messages)]
    left = MAX_BREAKPOINTS - (1 if request.system or request.tools else 0)
    # Most useful first: the newest turn (written for the next step), the ends of elided
    # stretches (read after the next elision), the previous turn, the brief.
    for turn in _distinct(users[-1:], points, users[-2:-1], users[:1])[:left]:
        turn["content"][-1] = {**turn["content"][-1], "cache_control": _CACHE}
    body: dict[str, Any] = {
        "model": model,
        "max_tokens": request.max_tokens,
        "messages": messages,
    }
    if request.system:
        body["system"] = [{"type": "text", "text": request.system, "cache_control": _CACHE}]
    if request.tools:
        tools = [
            {"name": t.name, "description": t.description, "input_schema": dict(t.input_schema)}
            for t in request.tools
        ]
        if not request.system:
            tools[-1]["cache_control"] = _CACHE
        body["tools"] = tools
    if request.tool_choice is not None:
        body["tool_choice"] = {"type": "tool", "name": request.tool_choice}
    return body


def _distinct(*groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    for group in groups:
        seen += [item for item in group if all(item is not s for s in seen)]
    return seen


def _thinking_block(block: Thinking) -> dict[str, Any]:
    if block.redacted:
        return {"type": "redacted_thinking", "data": block.text}
    return {"type": "thinking", "thinking": block.text, "signature": block.signature}


def parse_reply(data: Any, name: str) -> ModelReply:
    """A `ModelReply` from a Messages API response body; `MalformedReply` if it is not one."""
    try:
        texts: list[str] = []
        calls: list[ToolCall] = []
        thinking: list[Thinking] = []
        for block in data["content"]:
            if block["type"] == "text":
                texts.append(str(block["text"]))
            elif block["type"] == "thinking":
                thinking.append(Thinking(str(block["thinking"]), str(block.get("signature", ""))))
            elif block["type"] == "redacted_thinking":
                thinking.append(Thinking(str(block["data"]), redacted=True))
            elif block["type"] == "tool_use":
                arguments, invalid = read_arguments(block.get("input"))
                calls.append(ToolCall(str(block["id"]), str(block["name"]), arguments, invalid))
        raw_usage = data["usage"]
        usage = Usage(
            input_tokens=int(raw_usage.get("input_tokens") or 0),
            output_tokens=int(raw_usage.get("output_tokens") or 0),
            cache_read_tokens=int(raw_usage.get("cache_read_input_tokens") or 0),
            cache_write_tokens=int(raw_usage.get("cache_creation_input_tokens") or 0),
        )
        stop = _STOP.get(str(data.get("stop_reason")), "other")
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise MalformedReply(f"{name}: reply is not a Messages response ({exc!r})") from None
    return ModelReply(
        "".join(texts), tuple(calls), stop, usage, name, raw=data, thinking=tuple(thinking)
    )


WIRE = Wire(
    provider="anthropic",
    sdk=anthropic,
    client=anthropic.Anthropic,
    create=lambda client: client.messages.with_raw_response.create,
    body=request_body,
    parse=parse_reply,
)
"""`anthropic:<model>` over the Messages API, through `karma.models.sdk.SdkModel`."""
