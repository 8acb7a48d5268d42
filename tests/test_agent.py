"""The agent loop with the scripted model: tools, finish, limits, and being stuck."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from karma.agent import Brief, first_message, run_agent
from karma.config import AgentConfig
from karma.models.script import parse_script
from karma.models.scripted import ScriptedModel
from karma.sandbox.interface import ExecResult
from karma.tools import Toolbox


class CannedRunner:
    def __init__(self) -> None:
        self.commands: list[str] = []

    def __call__(self, command: str, time_left: float = 0.0) -> ExecResult:
        self.commands.append(command)
        return ExecResult(command, 0, "1 passed", 0.2)


BRIEF = Brief(
    "api",
    "Create the API",
    "Add app/api.py.",
    "Add an API",
    attempt=1,
    plan_notes="- db (Create the DB), done",
    hints=("add type annotations",),
)


def model(replies: list[dict[str, Any]]) -> ScriptedModel:
    script = parse_script(
        {"conversations": [{"match": {"user": ["Task api:"]}, "replies": replies}]}
    )
    return ScriptedModel("small", script, sleep=lambda _s: None)


def call(name: str, **arguments: Any) -> dict[str, Any]:
    return {"tool_calls": [{"name": name, "arguments": arguments}]}


def test_first_message_contract() -> None:
    text = first_message(BRIEF)
    assert text.startswith("Task api: Create the API\nAttempt 1\n")
    assert "add type annotations" in text and "Add an API" in text and "db (Create the DB)" in text


def test_runs_tools_until_finish(tmp_path: Path) -> None:
    runner = CannedRunner()
    box = Toolbox(tmp_path, runner, output_chars=1000)
    replies = [
        call("write_file", path="app/api.py", content="X = 1\n"),
        call("run", command="pytest -q"),
        call("finish", summary="API added"),
    ]
    steps: list[str] = []
    result = run_agent(
        BRIEF,
        model(replies),
        box,
        AgentConfig(),
        stop=threading.Event(),
        on_step=lambda n, tool, *_: steps.append(tool),
    )
    assert result.status == "finished" and result.summary == "API added"
    assert (tmp_path / "app" / "api.py").read_text() == "X = 1\n"
    assert runner.commands == ["pytest -q"]
    assert steps == ["write_file", "run", "finish"] and result.steps == 3
    assert result.usage.output_tokens > 0


def test_identical_action_three_times_is_stuck(tmp_path: Path) -> None:
    box = Toolbox(tmp_path, CannedRunner(), output_chars=1000)
    replies = [call("read_file", path="missing.py")] * 5
    result = run_agent(BRIEF, model(replies), box, AgentConfig(), stop=threading.Event())
    assert result.status == "stuck" and result.steps == 3


def test_step_limit(tmp_path: Path) -> None:
    box = Toolbox(tmp_path, CannedRunner(), output_chars=1000)
    replies = [call("write_file", path=f"f{i}.py", content="x") for i in range(10)]
    result = run_agent(BRIEF, model(replies), box, AgentConfig(max_steps=4), stop=threading.Event())
    assert result.status == "limit" and "step limit" in result.detail


def test_script_exhausted_is_a_provider_error_result(tmp_path: Path) -> None:
    box = Toolbox(tmp_path, CannedRunner(), output_chars=1000)
    result = run_agent(
        BRIEF, model([call("list_files", path=".")]), box, AgentConfig(), stop=threading.Event()
    )
    assert result.status == "provider_error"


def test_stop_event_interrupts(tmp_path: Path) -> None:
    stop = threading.Event()
    stop.set()
    box = Toolbox(tmp_path, CannedRunner(), output_chars=1000)
    result = run_agent(BRIEF, model([call("finish", summary="x")]), box, AgentConfig(), stop=stop)
    assert result.status == "interrupted" and result.steps == 0


GOLDEN = Path(__file__).parent / "golden" / "prompts" / "agent_first_request.txt"


def test_rendered_agent_prompt_is_golden() -> None:
    """Regenerate with KARMA_UPDATE_GOLDEN=1 after a deliberate prompt change."""
    import os

    from karma.agent import SYSTEM
    from karma.tools import TOOLS

    tools = "\n".join(f"{t.name}: {sorted(t.input_schema['properties'])}" for t in TOOLS)
    rendered = (
        f"--- system ---\n{SYSTEM}\n--- tools ---\n{tools}\n--- user ---\n{first_message(BRIEF)}\n"
    )
    if os.environ.get("KARMA_UPDATE_GOLDEN"):
        GOLDEN.write_text(rendered)
    assert rendered == GOLDEN.read_text()
