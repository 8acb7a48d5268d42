"""JSON form of `ModelRequest` and `ModelReply`: what the run store records and replay reads.

One canonical encoding (sorted keys, no spaces) so that the same request always hashes the
same (`request_hash`). Reading goes through pydantic with `extra="forbid"`: a recorded run
is an edge, and a record written by another version fails loudly, naming the key.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from karma.models.interface import (
    AssistantMessage,
    MalformedReply,
    Message,
    ModelReply,
    ModelRequest,
    StopReason,
    Thinking,
    ToolCall,
    ToolResult,
    ToolSpec,
    Usage,
    UserMessage,
)
from karma.text.redact import redact_value


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def request_text(request: ModelRequest) -> str:
    """The request's canonical JSON as the run record keeps it: redacted."""
    return canonical(redact_value(request_to_json(request)))


def request_hash(request: ModelRequest) -> str:
    """sha256 of the request's recorded (redacted) canonical JSON.

    Hashing the redacted form lets a replay match a recorded request that held a
    credential: the replayed request holds the placeholder where the original had it.
    """
    return hashlib.sha256(request_text(request).encode()).hexdigest()


# -- writing ------------------------------------------------------------------------------


# Fields added later are written only when set, so older records keep their hashes.


def _call_json(call: ToolCall) -> dict[str, Any]:
    data: dict[str, Any] = {"id": call.id, "name": call.name, "arguments": dict(call.arguments)}
    if call.invalid is not None:
        data["invalid"] = call.invalid
    return data


def _thinking_json(blocks: tuple[Thinking, ...]) -> list[dict[str, Any]]:
    return [{"text": b.text, "signature": b.signature, "redacted": b.redacted} for b in blocks]


def message_to_json(message: Message) -> dict[str, Any]:
    if isinstance(message, UserMessage):
        return {
            "role": "user",
            "text": message.text,
            "tool_results": [
                {"call_id": r.call_id, "content": r.content, "is_error": r.is_error}
                for r in message.tool_results
            ],
        }
    data: dict[str, Any] = {
        "role": "assistant",
        "text": message.text,
        "tool_calls": [_call_json(call) for call in message.tool_calls],
    }
    if message.thinking:
        data["thinking"] = _thinking_json(message.thinking)
    return data


def request_to_json(request: ModelRequest) -> dict[str, Any]:
    data: dict[str, Any] = {
        "system": request.system,
        "messages": [message_to_json(m) for m in request.messages],
        "tools": [
            {"name": t.name, "description": t.description, "input_schema": dict(t.input_schema)}
            for t in request.tools
        ],
        "max_tokens": request.max_tokens,
        "tool_choice": request.tool_choice,
        "purpose": request.purpose,
    }
    if request.notes:
        data["notes"] = list(request.notes)
    if request.cache_points:
        data["cache_points"] = list(request.cache_points)
    return data


def usage_to_json(usage: Usage) -> dict[str, int]:
    return {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_read_tokens": usage.cache_read_tokens,
        "cache_write_tokens": usage.cache_write_tokens,
    }


def reply_to_json(reply: ModelReply) -> dict[str, Any]:
    data: dict[str, Any] = {
        "text": reply.text,
        "tool_calls": [_call_json(call) for call in reply.tool_calls],
        "stop_reason": reply.stop_reason,
        "usage": usage_to_json(reply.usage),
        "model": reply.model,
        "latency_s": reply.latency_s,
        "cost_usd": reply.cost_usd,
        "raw": dict(reply.raw),
    }
    if reply.thinking:
        data["thinking"] = _thinking_json(reply.thinking)
    return data


# -- reading ------------------------------------------------------------------------------


class _Json(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _ToolSpecJ(_Json):
    name: str
    description: str = ""
    input_schema: dict[str, Any]


class _ToolCallJ(_Json):
    id: str
    name: str
    arguments: dict[str, Any]
    invalid: str | None = None

    def value(self) -> ToolCall:
        return ToolCall(self.id, self.name, self.arguments, self.invalid)


class _ThinkingJ(_Json):
    text: str
    signature: str = ""
    redacted: bool = False

    def value(self) -> Thinking:
        return Thinking(self.text, self.signature, self.redacted)


class _ToolResultJ(_Json):
    call_id: str
    content: str
    is_error: bool = False


class _MessageJ(_Json):
    role: Literal["user", "assistant"]
    text: str = ""
    tool_results: list[_ToolResultJ] = []
    tool_calls: list[_ToolCallJ] = []
    thinking: list[_ThinkingJ] = []

    def value(self) -> Message:
        if self.role == "user":
            results = tuple(ToolResult(r.call_id, r.content, r.is_error) for r in self.tool_results)
            return UserMessage(self.text, results)
        return AssistantMessage(
            self.text,
            tuple(c.value() for c in self.tool_calls),
            tuple(t.value() for t in self.thinking),
        )


class _RequestJ(_Json):
    system: str
    messages: list[_MessageJ]
    tools: list[_ToolSpecJ] = []
    max_tokens: int = 4096
    tool_choice: str | None = None
    purpose: str = "agent"
    notes: list[str] = []
    cache_points: list[int] = []


class _UsageJ(_Json):
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0


class _ReplyJ(_Json):
    text: str = ""
    tool_calls: list[_ToolCallJ] = []
    stop_reason: StopReason
    usage: _UsageJ = _UsageJ()
    model: str
    latency_s: float = 0.0
    cost_usd: float = 0.0
    raw: dict[str, Any] = {}
    thinking: list[_ThinkingJ] = []


def _load(model: type[_RequestJ] | type[_ReplyJ], data: Any, what: str) -> Any:
    try:
        if isinstance(data, str | bytes):
            return model.model_validate_json(data)
        return model.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        key = ".".join(str(part) for part in error["loc"]) or "(top level)"
        message = "unknown key" if error["type"] == "extra_forbidden" else error["msg"]
        raise MalformedReply(f"recorded {what}: {key}: {message}") from None


def request_from_json(data: str | bytes | dict[str, Any]) -> ModelRequest:
    parsed: _RequestJ = _load(_RequestJ, data, "request")
    return ModelRequest(
        system=parsed.system,
        messages=tuple(m.value() for m in parsed.messages),
        tools=tuple(ToolSpec(t.name, t.description, t.input_schema) for t in parsed.tools),
        max_tokens=parsed.max_tokens,
        tool_choice=parsed.tool_choice,
        purpose=parsed.purpose,
        notes=tuple(parsed.notes),
        cache_points=tuple(parsed.cache_points),
    )


def reply_from_json(data: str | bytes | dict[str, Any]) -> ModelReply:
    parsed: _ReplyJ = _load(_ReplyJ, data, "reply")
    u = parsed.usage
    return ModelReply(
        text=parsed.text,
        tool_calls=tuple(c.value() for c in parsed.tool_calls),
        stop_reason=parsed.stop_reason,
        usage=Usage(u.input_tokens, u.output_tokens, u.cache_read_tokens, u.cache_write_tokens),
        model=parsed.model,
        latency_s=parsed.latency_s,
        cost_usd=parsed.cost_usd,
        raw=parsed.raw,
        thinking=tuple(t.value() for t in parsed.thinking),
    )
