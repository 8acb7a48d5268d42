"""The OpenAI backend: Chat Completions through the official SDK.

Also serves any OpenAI-compatible server (Ollama, vLLM, llama.cpp, LM Studio) through
`base_url`. OpenAI caches long prompts by prefix on its own, so the stable part (system
prompt, then tools) always comes first, and `prompt_cache_key` (a hash of that prefix and
the brief) sends the steps of one attempt to the same cache. Tool-call arguments arrive
as JSON *strings* written by the model: one that does not parse (cut off, wrong quoting)
or is not an object is carried as an *invalid* call, which the agent answers with an
error the model sees; asking again would get the same reply. A `refusal` is a refusal
whatever the finish reason. The SDK's own retries are off (`max_retries=0`): `retry.py`
is the only retry layer.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import openai

from karma.models.interface import (
    MalformedReply,
    ModelReply,
    ModelRequest,
    StopReason,
    ToolCall,
    Usage,
    UserMessage,
    read_arguments,
)
from karma.models.sdk import Wire

_STOP: dict[str, StopReason] = {
    "stop": "end_turn",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "length": "max_tokens",
    "content_filter": "refusal",
}
ERROR_PREFIX = "[error] "
"""Tool messages have no error flag: a failed tool's output is marked in its text."""


def cache_key(request: ModelRequest) -> str:
    """The same for every step of one attempt: system prompt, tools and first message."""
    first = request.messages[0].text if request.messages else ""
    tools = [t.name for t in request.tools]
    digest = hashlib.sha256(json.dumps([request.system, tools, first]).encode())
    return f"karma-{digest.hexdigest()[:32]}"


def request_body(model: str, request: ModelRequest) -> dict[str, Any]:
    """The Chat Completions body of `request`, stable prefix first."""
    messages: list[dict[str, Any]] = []
    if request.system:
        messages.append({"role": "system", "content": request.system})
    for message in request.messages:
        if isinstance(message, UserMessage):
            messages.extend(
                {
                    "role": "tool",
                    "tool_call_id": r.call_id,
                    "content": (ERROR_PREFIX if r.is_error else "") + r.content,
                }
                for r in message.tool_results
            )
            if message.text or not message.tool_results:
                messages.append({"role": "user", "content": message.text})
        else:
            turn: dict[str, Any] = {"role": "assistant", "content": message.text or None}
            # An unreadable call goes back as `{}`: its error result says what was wrong.
            if message.tool_calls:
                turn["tool_calls"] = [
                    {
                        "id": c.id,
                        "type": "function",
                        "function": {"name": c.name, "arguments": json.dumps(dict(c.arguments))},
                    }
                    for c in message.tool_calls
                ]
            messages.append(turn)
    body: dict[str, Any] = {
        "model": model,
        "messages": messages,
        "max_completion_tokens": request.max_tokens,
        "prompt_cache_key": cache_key(request),
    }
    if request.tools:
        body["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": t.name,
                    "description": t.description,
                    "parameters": dict(t.input_schema),
                },
            }
            for t in request.tools
        ]
    if request.tool_choice is not None:
        body["tool_choice"] = {"type": "function", "function": {"name": request.tool_choice}}
    return body


def parse_reply(data: Any, name: str) -> ModelReply:
    """A `ModelReply` from a Chat Completions body; `MalformedReply` if it is not one."""
    try:
        choice = data["choices"][0]
        message = choice["message"]
        calls: list[ToolCall] = []
        for call in message.get("tool_calls") or ():
            function = call["function"]
            arguments, invalid = read_arguments(function.get("arguments"))
            calls.append(ToolCall(str(call["id"]), str(function["name"]), arguments, invalid))
        raw_usage = data.get("usage") or {}
        details = raw_usage.get("prompt_tokens_details") or {}
        cached = int(details.get("cached_tokens") or 0)
        usage = Usage(
            input_tokens=max(0, int(raw_usage.get("prompt_tokens") or 0) - cached),
            output_tokens=int(raw_usage.get("completion_tokens") or 0),
            cache_read_tokens=cached,
        )
        stop = _STOP.get(str(choice.get("finish_reason")), "other")
        text = str(message.get("content") or "")
        if message.get("refusal"):
            stop, text = "refusal", text or str(message["refusal"])
    except (KeyError, IndexError, TypeError, AttributeError, ValueError) as exc:
        raise MalformedReply(f"{name}: reply is not a chat completion ({exc!r})") from None
    return ModelReply(text, tuple(calls), stop, usage, name, raw=data)


WIRE = Wire(
    provider="openai",
    sdk=openai,
    client=openai.OpenAI,
    create=lambda client: client.chat.completions.with_raw_response.create,
    body=request_body,
    parse=parse_reply,
)
"""`openai:<model>` over Chat Completions, through `karma.models.sdk.SdkModel`."""
