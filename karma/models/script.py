"""The model script: conversations of canned replies, and how a request picks its reply.

One format drives both the in-process `scripted` backend and the loopback HTTP server
(`karma.testing.model_server`), so matching looks at request *content only*. Selection is
stateless: the reply used is `replies[n]` where n is the number of assistant messages
already in the request; the first conversation (file order) whose `match` fits wins.
Faults are carried here too, but only the loopback server acts on them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from karma.errors import ConfigError
from karma.models.interface import (
    AssistantMessage,
    ModelRequest,
    ScriptExhausted,
    StopReason,
    ToolCall,
    Usage,
    UserMessage,
)

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's safe loader where it is built in: the same documents, ten times faster."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


FaultKind = Literal["timeout", "truncated", "malformed", "max_tokens"]


class Fault(_Strict):
    """A failure the loopback server injects instead of (or on top of) a reply."""

    status: int | None = Field(default=None, ge=100, le=599)
    """Answer with this HTTP status and a provider-shaped error body."""
    headers: dict[str, str] = {}
    """Extra response headers, e.g. `retry-after`."""
    body: str | dict[str, Any] | None = None
    """The error body; a string is sent raw (e.g. truncated JSON). Default: provider-shaped."""
    message: str | None = None
    """The message inside the generated error body (e.g. "spend limit reached")."""
    kind: FaultKind | None = None
    """`timeout`: sleep past the client's timeout then close; `truncated`: 200 with a
    cut-off JSON body; `malformed`: 200 with non-JSON; `max_tokens`: the reply, cut short."""
    latency_s: float = Field(default=0.0, ge=0)
    """Delay before answering (for `timeout`, how long to stall; default 30 s)."""
    times: int = Field(default=1, ge=1)
    """How many requests this fault applies to (per server instance)."""


class ScriptToolCall(_Strict):
    name: str
    arguments: dict[str, Any] = {}
    raw_arguments: str | None = None
    """Sent verbatim instead of `arguments` (the loopback server only): OpenAI gets it as
    the `arguments` string, Anthropic as `input` (parsed if it is JSON, else the string
    itself), to play cut-off or mis-encoded arguments."""


class ScriptThinking(_Strict):
    """An extended-thinking block of a reply (Anthropic, loopback server only)."""

    text: str
    redacted: bool = False


class ScriptUsage(_Strict):
    input_tokens: int = Field(default=0, ge=0)
    output_tokens: int = Field(default=0, ge=0)
    cache_read_tokens: int = Field(default=0, ge=0)
    cache_write_tokens: int = Field(default=0, ge=0)


class ScriptReply(_Strict):
    text: str = ""
    tool_calls: list[ScriptToolCall] = []
    stop_reason: StopReason | None = None
    """Default: `tool_use` when there are tool calls, else `end_turn`."""
    usage: ScriptUsage | None = None
    """Default: estimated from character counts (chars / 4)."""
    latency_s: float = Field(default=0.0, ge=0)
    fault: Fault | None = None
    thinking: list[ScriptThinking] = []
    """Signed by the loopback server, which then requires them back unchanged."""
    refusal: str | None = None
    """OpenAI's `message.refusal` (the loopback server only)."""


class Match(_Strict):
    tool: str | None = None
    """A tool with this name is offered in the request."""
    user: list[str] = []
    """Substrings that must all appear in the first user message."""
    system: str | None = None
    """A substring of the system prompt."""

    @field_validator("user", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    def fits(self, request: ModelRequest) -> bool:
        if self.tool is not None and all(t.name != self.tool for t in request.tools):
            return False
        if self.system is not None and self.system not in request.system:
            return False
        first = first_user_text(request)
        return all(part in first for part in self.user)


class Conversation(_Strict):
    name: str | None = None
    match: Match = Match()
    replies: list[ScriptReply] = Field(min_length=1)


class Script(_Strict):
    conversations: list[Conversation]

    def select(self, request: ModelRequest) -> Selection:
        """The reply for `request`; `ScriptExhausted` when nothing matches or none is left."""
        n = sum(isinstance(m, AssistantMessage) for m in request.messages)
        for index, conversation in enumerate(self.conversations):
            if not conversation.match.fits(request):
                continue
            if n >= len(conversation.replies):
                label = conversation.name or f"#{index}"
                raise ScriptExhausted(
                    f"script conversation {label} has {len(conversation.replies)} replies;"
                    f" reply {n + 1} was asked for (first user line: {_first_line(request)!r})"
                )
            return Selection(index, n, conversation.replies[n])
        raise ScriptExhausted(
            f"no script conversation matches the request (first user line: "
            f"{_first_line(request)!r})",
            tip="add a conversation whose `match` fits this request to the script",
        )


@dataclass(frozen=True)
class Selection:
    """The reply a request picked: `replies[n]` of conversation `conversation`."""

    conversation: int
    n: int
    reply: ScriptReply

    def tool_calls(self) -> tuple[ToolCall, ...]:
        return tuple(
            ToolCall(f"call_{self.conversation}_{self.n}_{i}", call.name, call.arguments)
            for i, call in enumerate(self.reply.tool_calls)
        )

    def stop_reason(self) -> StopReason:
        if self.reply.stop_reason is not None:
            return self.reply.stop_reason
        return "tool_use" if self.reply.tool_calls else "end_turn"

    def usage(self, request: ModelRequest) -> Usage:
        given = self.reply.usage
        if given is not None:
            return Usage(
                given.input_tokens,
                given.output_tokens,
                given.cache_read_tokens,
                given.cache_write_tokens,
            )
        return estimate_usage(request, self.reply)


def first_user_text(request: ModelRequest) -> str:
    for message in request.messages:
        if isinstance(message, UserMessage):
            return message.text
    return ""


def _first_line(request: ModelRequest) -> str:
    lines = first_user_text(request).strip().splitlines()
    return lines[0][:120] if lines else ""


def estimate_usage(request: ModelRequest, reply: ScriptReply) -> Usage:
    """Tokens guessed as characters / 4, so unscripted usage still has plausible figures."""
    chars = len(request.system)
    for message in request.messages:
        chars += len(message.text)
        if isinstance(message, UserMessage):
            chars += sum(len(r.content) for r in message.tool_results)
        else:
            chars += sum(len(json.dumps(dict(c.arguments))) for c in message.tool_calls)
    for tool in request.tools:
        chars += len(tool.name) + len(tool.description) + len(json.dumps(dict(tool.input_schema)))
    out = len(reply.text) + sum(len(json.dumps(c.arguments)) for c in reply.tool_calls)
    return Usage(input_tokens=max(1, chars // 4), output_tokens=max(1, out // 4))


def parse_script(data: Any, source: str = "script") -> Script:
    try:
        return Script.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        key = ".".join(str(part) for part in error["loc"]) or "(top level)"
        message = "unknown key" if error["type"] == "extra_forbidden" else error["msg"]
        raise ConfigError(f"{source}: {key}: {message}") from None


def load_script(path: Path) -> Script:
    """Read a YAML or JSON script (JSON is YAML); `ConfigError` names a bad key.

    One parse per file version: every scripted model of a build shares it (it is frozen).
    """
    try:
        stat = path.stat()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the model script: {exc.strerror}") from None
    return _load(path.resolve(), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=8)
def _load(path: Path, mtime_ns: int, size: int) -> Script:
    del mtime_ns, size  # the cache key: a changed file is read again
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)  # noqa: S506 (safe)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the model script: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: malformed YAML/JSON: {exc}") from None
    return parse_script(data, str(path))
