"""The two HTTP protocols the loopback model server speaks, as plain JSON transforms.

Requests in Anthropic Messages or OpenAI Chat Completions shape are decoded into KARMA's
`ModelRequest` (so the model script can match on content), and a scripted reply is
encoded back in the caller's shape, usage fields included. Written independently of the
backends in `karma.models`, so the tests check one against the other.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any, Literal

from karma.models.interface import (
    AssistantMessage,
    Message,
    ModelRequest,
    StopReason,
    Thinking,
    ToolCall,
    ToolResult,
    ToolSpec,
    Usage,
    UserMessage,
)

Protocol = Literal["anthropic", "openai"]

ERROR_PREFIX = "[error] "  # how the OpenAI backend marks a failed tool's output
_ANTHROPIC_ERRORS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
_OPENAI_FINISH = {
    "end_turn": "stop",
    "tool_use": "tool_calls",
    "max_tokens": "length",
    "stop_sequence": "stop",
    "refusal": "content_filter",
    "pause_turn": "stop",
    "other": "stop",
}


# -- the protocols, decoded into KARMA's request type -----------------------------------


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def _object(value: Any) -> dict[str, Any]:
    """Tool arguments as sent back: an object, a JSON string of one, or anything else
    (a client may send back what a model wrote badly): `{}`."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    return dict(value) if isinstance(value, dict) else {}


def decode_anthropic(body: dict[str, Any]) -> ModelRequest:
    messages: list[Message] = []
    for message in body.get("messages", []):
        content = message.get("content", "")
        blocks: list[dict[str, Any]] = (
            [{"type": "text", "text": content}] if isinstance(content, str) else content
        )
        texts = [str(b.get("text", "")) for b in blocks if b.get("type") == "text"]
        if message.get("role") == "assistant":
            calls = tuple(
                ToolCall(b["id"], b["name"], _object(b.get("input")))
                for b in blocks
                if b.get("type") == "tool_use"
            )
            thinking = tuple(
                Thinking(str(b.get("thinking", "")), str(b.get("signature", "")))
                if b.get("type") == "thinking"
                else Thinking(str(b.get("data", "")), redacted=True)
                for b in blocks
                if b.get("type") in ("thinking", "redacted_thinking")
            )
            messages.append(AssistantMessage("".join(texts), calls, thinking))
        else:
            results = tuple(
                ToolResult(b["tool_use_id"], _text_of(b.get("content")), bool(b.get("is_error")))
                for b in blocks
                if b.get("type") == "tool_result"
            )
            messages.append(UserMessage("".join(texts), results))
    choice = body.get("tool_choice") or {}
    return ModelRequest(
        system=_text_of(body.get("system", "")),
        messages=tuple(messages),
        tools=tuple(
            ToolSpec(t["name"], t.get("description", ""), t.get("input_schema") or {})
            for t in body.get("tools") or ()
        ),
        max_tokens=int(body.get("max_tokens") or 0),
        tool_choice=choice.get("name") if choice.get("type") == "tool" else None,
    )


def decode_openai(body: dict[str, Any]) -> ModelRequest:
    system: list[str] = []
    messages: list[Message] = []
    pending: list[ToolResult] = []
    for message in body.get("messages", []):
        role = message.get("role")
        text = _text_of(message.get("content"))
        if role in ("system", "developer"):
            system.append(text)
        elif role == "tool":
            failed = text.startswith(ERROR_PREFIX)
            content = text.removeprefix(ERROR_PREFIX)
            pending.append(ToolResult(message["tool_call_id"], content, failed))
        elif role == "user":
            messages.append(UserMessage(text, tuple(pending)))
            pending = []
        elif role == "assistant":
            if pending:
                messages.append(UserMessage("", tuple(pending)))
                pending = []
            calls = tuple(
                ToolCall(c["id"], c["function"]["name"], _object(c["function"].get("arguments")))
                for c in message.get("tool_calls") or ()
            )
            messages.append(AssistantMessage(text, calls))
    if pending:
        messages.append(UserMessage("", tuple(pending)))
    choice = body.get("tool_choice")
    forced = choice["function"]["name"] if isinstance(choice, dict) else None
    return ModelRequest(
        system="\n".join(system),
        messages=tuple(messages),
        tools=tuple(
            ToolSpec(
                t["function"]["name"],
                t["function"].get("description", ""),
                t["function"].get("parameters") or {},
            )
            for t in body.get("tools") or ()
        ),
        max_tokens=int(body.get("max_completion_tokens") or body.get("max_tokens") or 0),
        tool_choice=forced,
    )


# -- and KARMA's reply, encoded in each protocol ----------------------------------------


def _anthropic_input(call: ToolCall, raw: Mapping[str, str]) -> Any:
    if call.id not in raw:
        return dict(call.arguments)
    try:
        return json.loads(raw[call.id])
    except ValueError:
        return raw[call.id]


def encode_anthropic(
    model: str,
    text: str,
    calls: tuple[ToolCall, ...],
    stop: StopReason,
    usage: Usage,
    n: int,
    *,
    thinking: tuple[Thinking, ...] = (),
    raw_arguments: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """`raw_arguments`: by call id, arguments to send instead of the call's own."""
    raw = raw_arguments or {}
    content: list[dict[str, Any]] = [
        {"type": "redacted_thinking", "data": t.text}
        if t.redacted
        else {"type": "thinking", "thinking": t.text, "signature": t.signature}
        for t in thinking
    ]
    content += [{"type": "text", "text": text}] if text else []
    content += [
        {"type": "tool_use", "id": c.id, "name": c.name, "input": _anthropic_input(c, raw)}
        for c in calls
    ]
    return {
        "id": f"msg_loopback_{n}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop if stop != "other" else "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "cache_read_input_tokens": usage.cache_read_tokens,
            "cache_creation_input_tokens": usage.cache_write_tokens,
        },
    }


def encode_openai(
    model: str,
    text: str,
    calls: tuple[ToolCall, ...],
    stop: StopReason,
    usage: Usage,
    n: int,
    *,
    raw_arguments: Mapping[str, str] | None = None,
    refusal: str | None = None,
) -> dict[str, Any]:
    """`raw_arguments`: by call id, the `arguments` string to send instead of the call's."""
    raw = raw_arguments or {}
    message: dict[str, Any] = {"role": "assistant", "content": text or None, "refusal": refusal}
    if calls:
        message["tool_calls"] = [
            {
                "id": c.id,
                "type": "function",
                "function": {
                    "name": c.name,
                    "arguments": raw.get(c.id, json.dumps(dict(c.arguments))),
                },
            }
            for c in calls
        ]
    prompt = usage.input_tokens + usage.cache_read_tokens + usage.cache_write_tokens
    return {
        "id": f"chatcmpl-loopback-{n}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": _OPENAI_FINISH[stop],
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": usage.output_tokens,
            "total_tokens": prompt + usage.output_tokens,
            "prompt_tokens_details": {"cached_tokens": usage.cache_read_tokens},
            "completion_tokens_details": {"reasoning_tokens": 0},
        },
    }


def error_body(protocol: Protocol | None, status: int, message: str) -> dict[str, Any]:
    kind = _ANTHROPIC_ERRORS.get(status, "api_error" if status >= 500 else "invalid_request_error")
    if protocol == "openai":
        code = {429: "rate_limit_exceeded", 401: "invalid_api_key"}.get(status)
        return {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return {"type": "error", "error": {"type": kind, "message": message}}


def undefined_tool(request: ModelRequest) -> str | None:
    """Stricter than the providers are known to be: every tool call in the conversation
    must name a tool the request offers."""
    offered = {tool.name for tool in request.tools}
    for message in request.messages:
        if isinstance(message, AssistantMessage):
            for call in message.tool_calls:
                if call.name not in offered:
                    return f"the conversation calls {call.name[:64]!r}, which is not in `tools`"
    return None
