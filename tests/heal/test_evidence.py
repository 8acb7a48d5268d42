"""Evidence: cleaned, bounded output tails, from an ExecResult or a bare log."""

from __future__ import annotations

from karma.heal import Evidence, clean_output
from karma.heal.evidence import guess_tool
from karma.sandbox.interface import ExecResult


def test_from_exec_keeps_state_and_strips_ansi() -> None:
    result = ExecResult("python -m pytest -q", 137, "\x1b[31mKilled\x1b[0m\r\n", 3.5, "memory")
    ev = Evidence.from_exec(result, step="test")
    assert ev.output_tail == "Killed\n"
    assert ev.tool == "pytest"
    assert ev.limit == "memory" and ev.state == "OOM-killed"
    assert ev.to_json()["duration_s"] == 3.5


def test_output_is_bounded_to_the_tail() -> None:
    text = "x" * 100_000 + "\nthe end"
    assert clean_output(text, limit=1000).endswith("the end")
    assert len(clean_output(text, limit=1000)) == 1000


def test_binary_output_is_decoded_without_control_bytes() -> None:
    cleaned = clean_output(bytes(range(256)) * 10)
    assert "\x00" not in cleaned and "\x1b" not in cleaned


def test_carriage_returns_become_lines() -> None:
    assert clean_output("10%\r50%\r100%") == "10%\n50%\n100%"


def test_guess_tool() -> None:
    assert guess_tool("cd /w && .venv/bin/mypy karma") == "mypy"
    assert guess_tool("python3 -m pytest -q") == "pytest"
    assert guess_tool("python3 app.py") == "python"
    assert guess_tool("npx tsc -p .") == "npx"
    assert guess_tool("./run.sh") is None
