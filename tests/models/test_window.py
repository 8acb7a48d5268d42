"""Context-window accounting and elision (`karma.models.window`), and the codec's new fields."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from karma.config import AgentConfig
from karma.errors import RecipeError
from karma.models.codec import reply_from_json, reply_to_json, request_from_json, request_to_json
from karma.models.interface import (
    AssistantMessage,
    Message,
    ModelReply,
    ModelRequest,
    Thinking,
    ToolCall,
    ToolResult,
    Usage,
    UserMessage,
)
from karma.models.window import ContextWindow, stub, window_of
from karma.recipes import load_prices


def wrap(text: str) -> str:
    return f"<tool_output>\n{text}\n</tool_output>"


def conversation(outputs: list[tuple[str, str, bool]]) -> list[Message]:
    """The brief, then one (tool, output, failed) step per entry."""
    messages: list[Message] = [UserMessage("Task api: the brief " + "b" * 2000)]
    for n, (tool, output, failed) in enumerate(outputs):
        messages.append(AssistantMessage(f"step {n}", (ToolCall(f"c{n}", tool, {}),)))
        messages.append(UserMessage(tool_results=(ToolResult(f"c{n}", wrap(output), failed),)))
    return messages


def contents(messages: list[Message]) -> list[str]:
    return [r.content for m in messages if isinstance(m, UserMessage) for r in m.tool_results]


def test_stub_names_the_tool_exit_code_and_size() -> None:
    call = ToolCall("c", "run", {"command": "pytest"})
    assert stub(call, wrap("exit code 1\n" + "x" * 3800)) == (
        "[output of run: exit 1, 3,812 chars, elided]"
    )
    assert (
        stub(ToolCall("c", "read_file", {}), "y" * 900)
        == "[output of read_file: 900 chars, elided]"
    )


def test_under_the_threshold_nothing_changes() -> None:
    messages = conversation([("read_file", "a" * 1000, False)] * 3)
    before = list(messages)
    assert ContextWindow(100_000).fit("system", (), messages) == []
    assert messages == before


def test_oldest_outputs_go_first_the_brief_newest_turns_and_last_failure_stay() -> None:
    steps = [("read_file", "r" * 8000, False), ("run", "exit code 1\n" + "f" * 8000, True)]
    steps += [("read_file", "r" * 8000, False)] * 6
    messages = conversation(steps)
    brief = messages[0]
    window = ContextWindow(20_000, elide_at=0.6)
    notes = window.fit("system", (), messages)
    assert notes and all(n.startswith("elided ") for n in notes)
    out = contents(messages)
    assert messages[0] is brief
    assert out[0] == "[output of read_file: 8,000 chars, elided]"
    assert out[1].startswith("<tool_output>\nexit code 1")  # the last failure is kept
    assert not out[-1].startswith("[") and not out[-2].startswith("[")  # the newest turns
    assert window.estimate("system", (), messages) <= window.threshold
    assert window.cache_points and window.cache_points[-1] >= 1
    assert window.fit("system", (), messages) == []  # in batches: not again at once


def test_an_output_that_looks_like_a_stub_is_still_elided() -> None:
    """Attack: a file (untrusted) holding a stub's text must not dodge elision: outputs
    are wrapped, so only KARMA's own stubs match."""
    fake = "[output of run: exit 0, 10 chars, elided]"
    messages = conversation([("read_file", fake + "\n" + "z" * 9000, False)] * 6)
    ContextWindow(10_000).fit("system", (), messages)
    assert contents(messages)[0].startswith("[output of read_file: ")


def test_provider_usage_calibrates_the_estimate() -> None:
    messages = conversation([("read_file", "q" * 4000, False)])
    window = ContextWindow(100_000)
    first = window.estimate("s", (), messages)
    window.observe(first, first * 2)
    assert abs(window.estimate("s", (), messages) - first * 2) <= 1
    window.observe(1, 10**9)  # a wild figure is bounded
    assert window.scale == 3.0
    window.observe(10**9, 1)  # and so is a figure far too low
    assert window.scale == 0.6


def test_new_fields_round_trip_and_old_records_keep_their_form() -> None:
    plain = ModelRequest("s", (UserMessage("hi"),))
    assert set(request_to_json(plain)) == {
        "system", "messages", "tools", "max_tokens", "tool_choice", "purpose"
    }  # fmt: skip
    turn = AssistantMessage(
        "t",
        (ToolCall("c1", "run", {}, invalid="the arguments are not valid JSON"),),
        (Thinking("why", "sig"), Thinking("opaque", redacted=True)),
    )
    request = ModelRequest("s", (UserMessage("hi"), turn), notes=("elided c0",), cache_points=(1,))
    assert request_from_json(request_to_json(request)) == request
    reply = ModelReply("t", turn.tool_calls, "pause_turn", Usage(1, 2), "anthropic:x",
                       thinking=turn.thinking)  # fmt: skip
    assert reply_from_json(reply_to_json(reply)) == reply


def test_a_price_table_with_a_silly_context_window_is_refused(tmp_path: Path) -> None:
    """Attack: a window of 0 (or 12 tokens) would elide everything, every step."""
    table = tmp_path / "prices.toml"
    table.write_text('updated = 2026-11-01\n[models."x:y"]\ninput = 1.0\noutput = 1.0\n'
                     "context_window = 12\n")  # fmt: skip
    with pytest.raises(RecipeError, match="context_window"):
        load_prices(table)


def test_the_elision_threshold_is_bounded() -> None:
    for bad in (0, -0.5, 1.5):
        with pytest.raises(ValidationError, match="context_elide_at"):
            AgentConfig(context_elide_at=bad)


def test_every_model_in_the_shipped_price_table_has_its_window() -> None:
    table = load_prices()
    assert all(price.context_window for price in table.models.values())
    assert window_of("anthropic:claude-sonnet-4-5") == 200_000
    assert window_of("nobody:knows") == 128_000
