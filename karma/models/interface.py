"""The model seam: one small protocol, its value types and its errors.

A backend turns a `ModelRequest` (system prompt, messages, tool definitions) into a
`ModelReply` (text, tool calls, stop reason, normalised usage). SDK objects never cross
this line. Backends raise only `ProviderError`s; `retry.py` decides what to retry.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol

from karma.errors import EnvironmentProblem, ExitCode, KarmaError

StopReason = Literal[
    "end_turn", "tool_use", "max_tokens", "stop_sequence", "refusal", "pause_turn", "other"
]
"""`pause_turn`: Anthropic paused a long turn; the reply is sent back as is to continue it."""

_SAFE_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    input_schema: Mapping[str, Any]


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: Mapping[str, Any]
    invalid: str | None = None
    """Why the provider's arguments could not be read (not JSON, not an object): the call
    is never run, and the model is told this. `arguments` is then empty. Model output:
    untrusted."""


SHOWN_ARGUMENTS = 200
"""Characters of unreadable arguments quoted back to the model."""


def read_arguments(raw: Any) -> tuple[dict[str, Any], str | None]:
    """(arguments, None), or ({}, why not) for arguments a model wrote badly.

    A JSON string holding a JSON object (arguments encoded twice) is read through."""
    value = raw
    for _ in range(2):
        if not isinstance(value, str):
            break
        if not value.strip():
            value = {}
            break
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            shown = raw[:SHOWN_ARGUMENTS] + ("..." if len(raw) > SHOWN_ARGUMENTS else "")
            return (
                {},
                f"the arguments are not valid JSON ({exc.msg} at character {exc.pos}): {shown}",
            )
    if not isinstance(value, dict):
        return {}, f"the arguments must be a JSON object, not {type(value).__name__}"
    return value, None


@dataclass(frozen=True)
class Thinking:
    """An extended-thinking block, kept verbatim: Anthropic requires it back, signature
    and all, with the tool results of the same turn. `redacted`: `text` is the opaque
    `data` of a `redacted_thinking` block. Model output, untrusted: only ever sent back
    to the provider that wrote it, never read for instructions."""

    text: str
    signature: str = ""
    redacted: bool = False


@dataclass(frozen=True)
class ToolResult:
    call_id: str
    content: str
    is_error: bool = False


@dataclass(frozen=True)
class UserMessage:
    text: str = ""
    tool_results: tuple[ToolResult, ...] = ()


@dataclass(frozen=True)
class AssistantMessage:
    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    thinking: tuple[Thinking, ...] = ()

    def offered(self, tools: Collection[str]) -> AssistantMessage:
        """The message as a conversation keeps it: a call of a tool that was not offered
        becomes a line of text (a provider may refuse a conversation naming a tool it
        was not given), so it needs no result either."""
        unknown = [c for c in self.tool_calls if c.name not in tools]
        if not unknown:
            return self
        lines = [self.text] if self.text else []
        lines += [f"[called {c.name!r}, which is not one of the tools]" for c in unknown]
        kept = tuple(c for c in self.tool_calls if c.name in tools)
        return replace(self, text="\n".join(lines), tool_calls=kept)


Message = UserMessage | AssistantMessage


@dataclass(frozen=True)
class Usage:
    """Tokens of one call, normalised across providers (input excludes cached tokens)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cache_read_tokens + other.cache_read_tokens,
            self.cache_write_tokens + other.cache_write_tokens,
        )

    @property
    def total_in(self) -> int:
        return self.input_tokens + self.cache_read_tokens + self.cache_write_tokens


@dataclass(frozen=True)
class ModelRequest:
    system: str
    messages: tuple[Message, ...]
    tools: tuple[ToolSpec, ...] = ()
    max_tokens: int = 4096
    tool_choice: str | None = None
    """Force this tool (`submit_plan`, `submit_review`); None lets the model choose."""
    purpose: str = "agent"
    """What the call is for, as recorded: planner, agent, reviewer, reflect, ..."""
    notes: tuple[str, ...] = ()
    """What KARMA did to the conversation before this call (elided outputs), for the
    record only: never sent to the provider."""
    cache_points: tuple[int, ...] = ()
    """Indices of messages the later requests of this conversation repeat unchanged (the
    ends of elided stretches): a provider with explicit caching marks them."""


@dataclass(frozen=True)
class ModelReply:
    text: str
    tool_calls: tuple[ToolCall, ...]
    stop_reason: StopReason
    usage: Usage
    model: str
    """`provider:model` that answered."""
    latency_s: float = 0.0
    cost_usd: float = 0.0
    raw: Mapping[str, Any] = field(default_factory=dict)
    """The provider's reply as JSON, for the record and replay."""
    thinking: tuple[Thinking, ...] = ()

    def as_message(self, fresh_ids: str = "call") -> AssistantMessage:
        """The reply as it goes back into the conversation: call ids unique and well
        formed (else `<fresh_ids>_<n>`), tool names the providers accept (a model may
        write anything there; the record keeps what it wrote)."""
        seen: set[str] = set()
        calls = []
        for n, call in enumerate(self.tool_calls):
            ok_id = _SAFE_NAME.fullmatch(call.id) and call.id not in seen
            name = call.name if _SAFE_NAME.fullmatch(call.name) else "invalid_tool_name"
            calls.append(replace(call, id=call.id if ok_id else f"{fresh_ids}_{n}", name=name))
            seen.add(calls[-1].id)
        return AssistantMessage(self.text, tuple(calls), self.thinking)


class ModelClient(Protocol):
    """A model behind a provider; `name` is `provider:model`."""

    name: str

    def complete(self, request: ModelRequest) -> ModelReply: ...


# -- errors -----------------------------------------------------------------------


class ProviderError(KarmaError):
    """A model call failed. `retryable` and `retry_after` drive the retry layer."""

    retryable = False

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        tip: str | None = None,
    ) -> None:
        super().__init__(message, tip=tip)
        self.status = status
        self.retry_after = retry_after


class RateLimited(ProviderError):
    retryable = True


class Overloaded(ProviderError):
    retryable = True


class ServerError(ProviderError):
    retryable = True


class ProviderTimeout(ProviderError, TimeoutError):
    retryable = True


class ConnectionFailed(ProviderError, ConnectionError):
    retryable = True


class MalformedReply(ProviderError):
    """The body was truncated or not the protocol's JSON."""

    retryable = True


class SpendLimitReached(ProviderError):
    """A 429 that says the account's spend limit is reached: waiting will not help."""

    exit_code = ExitCode.BUDGET


class AuthFailed(ProviderError, EnvironmentProblem):
    """401/403: a wrong, missing or unauthorised key."""

    exit_code = ExitCode.ENVIRONMENT


class BadRequest(ProviderError):
    """A 4xx the provider will answer the same way every time."""


class ScriptExhausted(ProviderError):
    """The scripted model has no reply left for this conversation."""
