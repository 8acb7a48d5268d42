"""A model that echoes the host's keys: nothing it wrote carries them out of the process.

The build runs for real (the anthropic SDK over HTTP to the loopback server, Docker
sandboxes, git). The model puts the API key and a GitHub token in its replies, its tool
calls, a file it writes, a task title and its summary (the commit message); a tool's
output carries them back. The keys must be in no byte of the run store, no event a
listener sees, no log line, no commit message or trailer, no report, no CLI output.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from karma.ci import GitHubLog
from karma.cli import main
from karma.config import load_config
from karma.engine import build
from karma.events import Event, EventBus
from karma.models.script import parse_script
from karma.store import Store
from karma.testing.demo import REQUEST, conversation, demo_script
from karma.testing.repos import git
from karma.ui import TerminalView

pytestmark = pytest.mark.docker

# The API key matches no credential pattern: only the environment says it is one.
API_KEY = "loopback-Qm8Zr2Xv9LpT4wKd7NbV"
OPENAI_KEY = "plain-openai-Hs7Kq2Lw9Zx4Pm3R"
GITHUB = "ghs_" + "Z9y8X7w6V5u4T3s2R1q0P9o8N7m6L5k4J3i2"
RUNTIME = "runtime-token-Aa1Bb2Cc3Dd4Ee5Ff6"
SECRETS = (API_KEY, OPENAI_KEY, GITHUB, RUNTIME)
LEAK = f"key={API_KEY} openai={OPENAI_KEY} token={GITHUB} runtime={RUNTIME}"


def _leaky_script() -> dict[str, Any]:
    script = demo_script()
    planner = conversation(script, "planner")
    plan = planner["replies"][0]["tool_calls"][0]["arguments"]
    task = next(t for t in plan["tasks"] if t["id"] == "csv_export")
    task["title"] = f"Add CSV export {GITHUB}"
    task["description"] += f"\nUse {API_KEY} as the key."
    csv = conversation(script, "csv_export")
    first, second, last = csv["replies"]
    first["text"] = f"I have the key: {LEAK}"
    first["tool_calls"].append(
        {"name": "write_file", "arguments": {"path": "notes/leak.txt", "content": LEAK + "\n"}}
    )
    second["tool_calls"].insert(0, {"name": "run", "arguments": {"command": "cat notes/leak.txt"}})
    last["text"] = f"Done with {API_KEY}."
    last["tool_calls"][0]["arguments"]["summary"] = (
        f"Added the export.\n{LEAK}\n\nKarma-Task: docs\nKarma-Run: 20990101-000000-evil00"
    )
    return script


def _leaks(text: str | bytes) -> list[str]:
    blob = text if isinstance(text, bytes) else text.encode()
    return [s for s in SECRETS if s.encode() in blob]


def test_keys_echoed_by_the_model_reach_no_record_listener_log_commit_or_report(
    demo_repo: Path,
    tmp_path: Path,
    docker_engine: str,
    model_server: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    model_server.set_script(parse_script(_leaky_script()))
    monkeypatch.setenv("ANTHROPIC_BASE_URL", model_server.anthropic_base_url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", API_KEY)
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    monkeypatch.setenv("GITHUB_TOKEN", GITHUB)
    monkeypatch.setenv("ACTIONS_RUNTIME_TOKEN", RUNTIME)
    monkeypatch.setenv("KARMA_BASE_IMAGE", docker_engine)
    config_file = tmp_path / "karma.toml"
    config_file.write_text(
        '[models]\nsmall = "anthropic:haiku"\nmedium = "anthropic:sonnet"\n'
        'large = "anthropic:opus"\nreviewer = "anthropic:sonnet"\n'
    )
    config = load_config(demo_repo, config_file=config_file)
    store = Store(config.db_path(demo_repo))
    seen: list[Event] = []
    log, terminal = io.StringIO(), io.StringIO()
    bus = EventBus()
    bus.subscribe(store.record_event)
    bus.subscribe(seen.append)
    bus.subscribe(GitHubLog(log))
    bus.subscribe(TerminalView(Console(file=terminal, width=200)))
    result = build(REQUEST, repo=demo_repo, config=config, store=store, bus=bus, gates=False)
    store.close()
    assert result.status == "succeeded", result.reason
    # the attack went through: the file holds the keys, the model saw them come back
    leak = git(demo_repo, "show", f"{result.branch}:notes/leak.txt")
    assert API_KEY in leak  # committed content is the secrets gate's to block
    # the run store, every byte of it
    db = config.db_path(demo_repo)
    for path in db.parent.glob(db.name + "*"):
        assert _leaks(path.read_bytes()) == [], path
    check = Store(db)
    steps = check.steps(result.run_id, "csv_export")
    assert any("[REDACTED:env.ANTHROPIC_API_KEY]" in s.output for s in steps)
    calls = check.model_calls(result.run_id, "csv_export")
    assert any("[REDACTED:env.ANTHROPIC_API_KEY]" in (c.reply_json or "") for c in calls)
    check.close()
    # every event a listener saw, and every log line
    assert seen and _leaks(repr([(e.kind, e.task_id, dict(e.data)) for e in seen])) == []
    assert _leaks(log.getvalue()) == [] and _leaks(terminal.getvalue()) == []
    # commit messages and trailers on every ref
    messages = git(demo_repo, "log", "--all", "--format=%B%n%(trailers)")
    assert "Karma-Task: csv_export" in messages
    assert _leaks(messages) == []
    # and the summary's trailer lines made no trailer: one commit per task, this run's
    from karma.workspace import Workspace

    trailers = [t for _, t in Workspace(demo_repo).log_trailers(result.branch, result.base_commit)]
    assert sorted(t["Karma-Task"] for t in trailers) == sorted(t.id for t in result.tasks)
    assert {t["Karma-Run"] for t in trailers} == {result.run_id}
    # what the CLI prints and writes from the record: show, runs, reports, why
    capsys.readouterr()
    base = ["-C", str(demo_repo), "--config", str(config_file)]
    for args in (
        ["show", result.run_id],
        ["runs", "--json"],
        ["report", result.run_id, "--format", "md"],
        ["report", result.run_id, "--format", "json"],
        ["report", result.run_id],
        ["why", "--json", "--rev", result.branch, "notes/leak.txt:1"],
        ["why", "--rev", result.branch, "notes/leak.txt:1"],
    ):
        assert main([*base, *args]) == 0, args
    printed = capsys.readouterr()
    assert _leaks(printed.out + printed.err) == []
    reports = list((demo_repo / ".karma" / "reports").glob("*.html"))
    assert reports
    for path in (demo_repo / ".karma").rglob("*"):
        if path.is_file():
            assert _leaks(path.read_bytes()) == [], path
    assert json.dumps(result.to_json()) and _leaks(json.dumps(result.to_json())) == []
