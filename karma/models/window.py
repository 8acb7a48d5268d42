"""How many tokens a conversation holds, and how it is made to fit a model's context window.

Tokens are estimated before sending (characters / 4, scaled by what the provider
reported for the previous request of the same conversation). Past `elide_at` of the
window, older tool outputs are replaced by stubs such as `[output of run: exit 1,
3,812 chars, elided]`, oldest first, down to `ELIDE_TO` of the threshold, so elisions
come in batches and the provider's prompt cache is invalidated rarely. Never elided:
the first message (the brief), the newest `KEEP_NEWEST` turns of tool results, and the
last failing output. The system prompt and tools are not touched at all. Each elision
is returned as a note for the run record. Past `SUMMARY_AT` even so, the agent asks the
model for a summary of its progress and the conversation restarts from it (`asking`,
`restarted`): the brief, the summary, the newest outputs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from karma.models.interface import (
    AssistantMessage,
    Message,
    ToolCall,
    ToolResult,
    ToolSpec,
    UserMessage,
)

CHARS_PER_TOKEN = 4.0
SCALE_MIN, SCALE_MAX = 0.6, 3.0
"""Bounds of the calibration: a provider (or a compatible server) reporting far too few
tokens must not make the window look emptier than it is."""
KEEP_NEWEST = 2
"""Turns of tool results, counted from the newest, that are never elided."""
ELIDE_TO = 0.5
"""Elide down to this share of the threshold."""
MIN_ELIDED_CHARS = 400
"""Shorter outputs are kept: their stub would save next to nothing."""
DEFAULT_WINDOW = 128_000
"""Tokens, for a model the price table does not know."""
SUMMARY_AT = 0.85
"""Share of the window past which, elisions done, the conversation restarts from the
model's own summary of its progress."""
CONTINUE = (
    "Go on with the task from your summary above (the conversation before it was dropped "
    "to fit the context window)."
)
_STUB = re.compile(r"^\[output of [^\]]*, elided\]$")
_EXIT = re.compile(r"exit code (-?\d+)")
_OPEN, _CLOSE = "<tool_output>\n", "\n</tool_output>"  # how the agent marks outputs as data


def chars_of(messages: Iterable[Message]) -> int:
    total = 0
    for message in messages:
        total += len(message.text)
        if isinstance(message, UserMessage):
            total += sum(len(r.content) + 40 for r in message.tool_results)
        else:
            total += sum(len(json.dumps(dict(c.arguments))) + 40 for c in message.tool_calls)
            total += sum(len(t.text) + len(t.signature) for t in message.thinking)
    return total


def stub(call: ToolCall | None, content: str) -> str:
    """The stub that stands for an elided output (its tool, exit code and size)."""
    name = call.name if call is not None else "a tool"
    content = content.removeprefix(_OPEN).removesuffix(_CLOSE)
    code = _EXIT.search(content[:200]) if name == "run" else None
    exit_part = f"exit {code.group(1)}, " if code else ""
    return f"[output of {name}: {exit_part}{len(content):,} chars, elided]"


@dataclass
class ContextWindow:
    """The token budget of one attempt's conversation."""

    window: int
    elide_at: float = 0.6
    scale: float = 1.0
    """Provider tokens per estimated token, learnt from the last reply's usage."""
    marks: list[int] = field(default_factory=list)
    """Per elision batch, the index of the last message that no later batch will change
    (the output kept as the last failure may be elided later, so it can be before the
    newest change)."""

    @property
    def cache_points(self) -> tuple[int, ...]:
        """The ends of the last two elided stretches: later requests repeat them unchanged."""
        return tuple(self.marks[-2:])

    @property
    def threshold(self) -> int:
        return int(self.window * self.elide_at)

    @property
    def summary_threshold(self) -> int:
        return int(self.window * max(SUMMARY_AT, self.elide_at))

    def estimate(self, system: str, tools: tuple[ToolSpec, ...], messages: list[Message]) -> int:
        chars = len(system) + chars_of(messages)
        chars += sum(len(t.description) + len(json.dumps(dict(t.input_schema))) for t in tools)
        return int(chars / CHARS_PER_TOKEN * self.scale)

    def observe(self, estimated: int, reported: int) -> None:
        """Calibrate with the input tokens the provider reported for an estimated request."""
        if estimated > 0 and reported > 0:
            self.scale = min(SCALE_MAX, max(SCALE_MIN, self.scale * reported / estimated))

    def fit(self, system: str, tools: tuple[ToolSpec, ...], messages: list[Message]) -> list[str]:
        """Elide older outputs in place while the estimate is past the threshold; the notes."""
        size = self.estimate(system, tools, messages)
        if size <= self.threshold:
            return []
        target = int(self.threshold * ELIDE_TO)
        calls = {c.id: c for m in messages if isinstance(m, AssistantMessage) for c in m.tool_calls}
        notes: list[str] = []
        changed = -1
        for index, result in _candidates(messages):
            if size <= target:
                break
            message = messages[index]
            assert isinstance(message, UserMessage)
            short = stub(calls.get(result.call_id), result.content)
            results = tuple(
                replace(r, content=short) if r is result else r for r in message.tool_results
            )
            messages[index] = replace(message, tool_results=results)
            changed = index
            size -= int((len(result.content) - len(short)) / CHARS_PER_TOKEN * self.scale)
            notes.append(f"elided {result.call_id} {short}")
        first = min((i for i, _ in _candidates(messages, keep_none=True)), default=changed + 1)
        if changed >= 0 and first > 1:  # the prefix before `first` stays as it is now
            self.marks.append(first - 1)
        if size > self.threshold:
            notes.append(f"context ~{size} tokens of {self.window} after eliding what may be")
        return notes


def window_of(model: str) -> int:
    """The model's context window in tokens, from the price table."""
    from karma.recipes import load_prices

    price = load_prices().price(model)
    known = price.context_window if price is not None else None
    return known or DEFAULT_WINDOW


def asking(messages: list[Message], prompt: str) -> tuple[Message, ...]:
    """The conversation with `prompt` added to its last (user) turn."""
    last = messages[-1]
    if not isinstance(last, UserMessage):
        return (*messages, UserMessage(prompt))
    text = f"{last.text}\n\n{prompt}" if last.text else prompt
    return (*messages[:-1], replace(last, text=text))


def restarted(messages: list[Message], summary: str) -> list[Message]:
    """The conversation from a summary: the brief, the summary, and the newest turn's
    outputs (as text: the calls they answered are gone)."""
    last = messages[-1]
    carried = []
    if isinstance(last, UserMessage):
        carried = [r.content for r in last.tool_results] + ([last.text] if last.text else [])
    failure = _last_failure(messages)
    if failure is not None and failure.content not in carried:
        carried.insert(0, failure.content)
    summary = summary.strip() or "(no summary was written; the calls made:)\n" + "\n".join(
        f"- {c.name} {json.dumps(dict(c.arguments))[:160]}"
        for m in messages[-60:]
        if isinstance(m, AssistantMessage)
        for c in m.tool_calls
    )
    return [
        messages[0],
        AssistantMessage(f"Summary of my progress so far:\n{summary}"),
        UserMessage("\n\n".join([CONTINUE, *carried])),
    ]


def _candidates(
    messages: list[Message], *, keep_none: bool = False
) -> list[tuple[int, ToolResult]]:
    """Tool results that may be elided now, oldest first (`keep_none`: or later on)."""
    turns = [i for i, m in enumerate(messages) if isinstance(m, UserMessage) and m.tool_results]
    newest = set() if keep_none else set(turns[-KEEP_NEWEST:])
    keep = None if keep_none else _last_failure(messages)
    found = []
    for index in turns:
        if index == 0 or index in newest:
            continue
        message = messages[index]
        assert isinstance(message, UserMessage)
        for result in message.tool_results:
            if result is keep or len(result.content) < MIN_ELIDED_CHARS:
                continue
            if not _STUB.match(result.content):
                found.append((index, result))
    return found


def _last_failure(messages: list[Message]) -> ToolResult | None:
    """The newest failing output long enough to be elided: what the model must fix."""
    for message in reversed(messages):
        if isinstance(message, UserMessage):
            for result in reversed(message.tool_results):
                if result.is_error and len(result.content) >= MIN_ELIDED_CHARS:
                    return result
    return None
