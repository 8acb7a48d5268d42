"""The coding agent: one conversation per attempt, tools until `finish`, within limits.

The loop is deliberately small. It catches control flow in one place: a provider error,
a limit, or a repeated action becomes the attempt's `AgentResult`; the caller decides
what happens next. Limits hold within a reply too: at most `max_tool_calls_per_reply`
calls of one reply run (the rest get an error result), the wall-time deadline is checked
before every call and bounds each `run`, and a worktree grown past its limit ends the
attempt. Each step is recorded as it happens (in a `finally`), so the run
record is complete even when the process dies mid-attempt.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from karma.config import AgentConfig
from karma.conversation import (
    CORRECTIONS,
    KNOWN,
    NOT_RUN,
    SUMMARY_PROMPT,
    SYSTEM,
    Brief,
    first_message,
    kept,
    wrap_output,
)
from karma.failpoints import failpoint
from karma.models.interface import (
    Message,
    ModelClient,
    ModelReply,
    ModelRequest,
    ProviderError,
    ToolResult,
    Usage,
    UserMessage,
)
from karma.models.window import ContextWindow, asking, restarted, window_of
from karma.tools import TOOLS, Toolbox, ToolOutput

AgentStatus = Literal["finished", "stuck", "limit", "provider_error", "interrupted", "no_tool"]


@dataclass
class AgentResult:
    status: AgentStatus
    summary: str = ""
    detail: str = ""
    steps: int = 0
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0
    error: ProviderError | None = None
    elided: int = 0
    """Tool outputs replaced by stubs to keep the conversation within the context window."""
    peak_context: int = 0
    """The largest request of the attempt, in estimated tokens."""
    summaries: int = 0
    """Times the conversation restarted from the model's summary of its progress."""


def run_agent(
    brief: Brief,
    model: ModelClient,
    toolbox: Toolbox,
    limits: AgentConfig,
    *,
    stop: threading.Event,
    on_step: Callable[[int, str, dict[str, object], str, bool], None] = lambda *_: None,
    context_window: int | None = None,
    ready: Callable[[], str | None] = lambda: None,
    thinking: Callable[[], None] = lambda: None,
) -> AgentResult:
    """Drive one attempt to `finish` or to the limit that ends it.

    `context_window`: tokens; default the model's `context_window` in the price table.
    `ready` is asked after each reply, before its tools run (the first time it waits for
    the sandbox, which starts while the model thinks): a reason ends the attempt there,
    `interrupted`, so at most one reply is asked for in a sandbox that never got ready.
    `thinking` is called as each reply is asked for: the model's time, which the caller
    may put to use (the checks run ahead)."""
    messages: list[Message] = [UserMessage(first_message(brief))]
    result = AgentResult("limit")
    started = time.monotonic()
    seen: dict[str, int] = {}
    carried: list[str] = []  # notes of a summary, for the request that follows it
    window = ContextWindow(context_window or window_of(model.name), limits.context_elide_at)
    while True:
        if stop.is_set():
            result.status, result.detail = "interrupted", "the run was interrupted"
            return result
        over = _over_limit(result, limits, time.monotonic() - started)
        if over:
            result.status, result.detail = "limit", over
            return result
        notes = carried + window.fit(SYSTEM, TOOLS, messages)
        result.elided += sum(note.startswith("elided ") for note in notes)
        try:
            if window.estimate(SYSTEM, TOOLS, messages) > window.summary_threshold:
                asked = ModelRequest(SYSTEM, asking(messages, SUMMARY_PROMPT), TOOLS,
                                     limits.reply_max_tokens, purpose="summary")  # fmt: skip
                messages = restarted(messages, _charged(result, model.complete(asked)).text)
                window.marks.clear()
                result.summaries += 1
                carried = [*notes, f"summarised: {len(asked.messages)} messages became 3"]
                continue  # the summary was a step: the limits are checked again
            carried = []
            thinking()
            estimate = window.estimate(SYSTEM, TOOLS, messages)
            result.peak_context = max(result.peak_context, estimate)
            request = ModelRequest(SYSTEM, tuple(messages), TOOLS, limits.reply_max_tokens,
                                   purpose="agent", notes=tuple(notes),
                                   cache_points=window.cache_points)  # fmt: skip
            reply = _charged(result, model.complete(request))
        except ProviderError as exc:
            result.status, result.detail, result.error = "provider_error", str(exc), exc
            return result
        failpoint("after_model_reply")
        if (unready := ready()) is not None:
            result.status, result.detail = "interrupted", unready
            return result
        window.observe(estimate, reply.usage.total_in)
        message = reply.as_message(f"karma_{result.steps}")
        messages.append(kept(message))
        if not message.tool_calls:
            if reply.stop_reason != "pause_turn":  # a paused turn goes back as is, to go on
                messages.append(UserMessage(CORRECTIONS.get(reply.stop_reason, CORRECTIONS[None])))
            if _repeated(seen, ("text", reply.stop_reason, reply.text)):
                result.status, result.detail = "no_tool", "the model kept answering without tools"
                return result
            continue
        results: list[ToolResult] = []
        asides: list[str] = []  # what calls of unknown tools got: text, as they are not kept
        ended: str | None = None
        finished: str | None = None
        cut = NOT_RUN.get(reply.stop_reason)
        last = len(message.tool_calls) - 1
        for index, call in enumerate(message.tool_calls):
            left = started + limits.max_wall_s - time.monotonic()
            if ended is not None or left <= 0:
                ended = ended or f"wall-time limit ({limits.max_wall_s:.0f} s) reached"
                output = ToolOutput(f"not run: {ended}", is_error=True)
            elif cut is not None and (reply.stop_reason == "refusal" or index == last):
                output = ToolOutput(cut, is_error=True)
            elif call.invalid is not None:
                output = ToolOutput(f"not run: {call.invalid}. Send the call again with its "
                                    "arguments as one JSON object.", is_error=True)  # fmt: skip
            elif index >= limits.max_tool_calls_per_reply:
                output = ToolOutput(f"not run: at most {limits.max_tool_calls_per_reply} tool "
                                    "calls of one reply are run; make the rest in your next "
                                    "reply", is_error=True)  # fmt: skip
            else:
                output = toolbox.call(call.name, call.arguments, time_left=left)
            arguments = dict(call.arguments)
            try:
                on_step(result.steps, call.name, arguments, output.content, output.is_error)
            finally:
                if call.name in KNOWN:
                    results.append(
                        ToolResult(call.id, wrap_output(output.content), output.is_error)
                    )
                else:
                    asides.append(f"Your call of {call.name!r}: {output.content}")
            finished = finished if finished is not None else output.finished
            if toolbox.excess is not None:
                ended = ended or toolbox.excess
            if ended is None and _repeated(
                seen, (call.name, json.dumps(arguments, sort_keys=True), output.content)
            ):
                result.status = "stuck"
                result.detail = f"the same {call.name} call gave the same result 3 times"
                return result
        if ended is not None:  # every call of the reply is recorded, then the attempt ends
            result.status, result.detail = "limit", ended
            return result
        if finished is not None:  # `finish` takes effect once the reply's other calls ran
            result.status, result.summary = "finished", finished
            return result
        messages.append(UserMessage("\n".join(asides), tuple(results)))


def _charged(result: AgentResult, reply: ModelReply) -> ModelReply:
    """A model call is a step: its tokens and cost go on the attempt's account."""
    result.steps += 1
    result.usage = result.usage + reply.usage
    result.cost_usd += reply.cost_usd
    return reply


def _repeated(seen: dict[str, int], action: tuple[str, ...]) -> bool:
    key = "\x1f".join(action)
    seen[key] = seen.get(key, 0) + 1
    return seen[key] >= 3


def _over_limit(result: AgentResult, limits: AgentConfig, elapsed: float) -> str | None:
    if result.steps >= limits.max_steps:
        return f"step limit ({limits.max_steps}) reached"
    if result.usage.total_in + result.usage.output_tokens >= limits.max_tokens:
        return f"token limit ({limits.max_tokens}) reached"
    if result.cost_usd >= limits.max_cost_usd:
        return f"cost limit (${limits.max_cost_usd:.2f}) reached"
    if elapsed >= limits.max_wall_s:
        return f"wall-time limit ({limits.max_wall_s:.0f} s) reached"
    return None
