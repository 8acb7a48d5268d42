"""`karma build` end to end on the example project: real Docker, real git, real tests."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from karma.store import Store
from karma.testing.demo import REQUEST, break_attempts, demo_script, request_changes_once
from karma.testing.repos import git

pytestmark = pytest.mark.docker


def _interval(task: dict[str, Any]) -> tuple[datetime, datetime]:
    start = datetime.fromisoformat(task["started_at"].replace("Z", "+00:00"))
    end = datetime.fromisoformat(task["finished_at"].replace("Z", "+00:00"))
    return start, end


def test_demo_build(karma_build: Any, demo_repo: Path, tmp_path: Path) -> None:
    code, result = karma_build(None, "--no-gates")
    assert code == 0, result
    assert result["status"] == "succeeded"
    tasks = {t["id"]: t for t in result["tasks"]}
    assert set(tasks) == {"csv_export", "low_stock", "cli", "docs"}
    assert all(t["status"] == "succeeded" and t["attempts"] == 1 for t in tasks.values())
    # one commit per task on the build branch, each with its provenance trailers
    log = git(
        demo_repo,
        "log",
        "--format=%(trailers:key=Karma-Task,valueonly)",
        f"{result['base_commit']}..{result['branch']}",
    ).split()
    assert sorted(log) == sorted(tasks)
    assert git(demo_repo, "rev-parse", result["branch"]) == result["head_commit"]
    # the two independent tasks ran at the same time, each in its own container
    a, b = _interval(tasks["csv_export"]), _interval(tasks["low_stock"])
    assert a[0] < b[1] and b[0] < a[1]
    containers = {t["sandbox"]["container_id"] for t in tasks.values()}
    assert len(containers) == 4
    assert all(t["sandbox"]["image"].startswith("karma/stack-python:") for t in tasks.values())
    # the user's checkout is untouched, and the tests pass on the build branch
    assert git(demo_repo, "rev-parse", "--abbrev-ref", "HEAD") == "main"
    assert git(demo_repo, "status", "--porcelain") == ""
    checkout = tmp_path / "checkout"
    git(demo_repo, "worktree", "add", "-q", str(checkout), result["branch"])
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=checkout,
        capture_output=True,
        text=True,
    )
    assert tests.returncode == 0, tests.stdout
    assert "9 passed" in tests.stdout
    # nothing is left behind
    assert git(demo_repo, "branch", "--list", "karma-work/*") == ""
    worktrees = git(demo_repo, "worktree", "list", "--porcelain").count("worktree ")
    assert worktrees == 2  # the user's and the checkout above


def test_failed_first_attempt_is_healed(karma_build: Any, demo_repo: Path) -> None:
    code, result = karma_build(break_attempts(demo_script()), "--no-gates")
    assert code == 0, result
    task = next(t for t in result["tasks"] if t["id"] == "csv_export")
    assert task["attempts"] == 2 and task["status"] == "succeeded"
    first = task["history"][0]
    assert first["status"] == "failed"
    assert first["class"] == "test_failure"
    assert first["remediation"] == "retry_with_hint"
    store = Store(demo_repo / ".karma" / "karma.db")
    calls = store.model_calls(result["run_id"], "csv_export")
    second = next(c for c in calls if c.attempt == 2)
    assert "The previous attempt failed: test_failure" in second.request_json
    outcomes = store.outcomes()
    assert [(o["remediation"], o["outcome"]) for o in outcomes] == [("retry_with_hint", "resolved")]


def test_task_failing_every_attempt_escalates(karma_build: Any, demo_repo: Path) -> None:
    code, result = karma_build(break_attempts(demo_script(), attempts=(1, 2, 3, 4)), "--no-gates")
    assert code == 1
    assert result["status"] == "escalated"
    tasks = {t["id"]: t for t in result["tasks"]}
    assert tasks["csv_export"]["status"] == "escalated"
    assert tasks["csv_export"]["attempts"] == 4
    assert tasks["low_stock"]["status"] == "succeeded"  # kept on the build branch
    assert tasks["cli"]["status"] == "skipped"
    store = Store(demo_repo / ".karma" / "karma.db")
    escalations = [e for e in store.events(result["run_id"]) if e.kind == "task_escalated"]
    assert len(escalations) == 1
    assert "What you must decide" in escalations[0].data_json


def test_replay_reproduces_the_build_without_model_calls(
    karma_build: Any,
    demo_repo: Path,
    karma_config: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import json

    from karma.cli import main

    code, result = karma_build(None, "--no-gates")
    assert code == 0
    monkeypatch.setenv("KARMA_SCRIPT", "/nonexistent/script.yaml")  # no model can answer
    code = main(
        ["-C", str(demo_repo), "--config", str(karma_config), "replay", "--json", result["run_id"]]
    )
    report = json.loads(capsys.readouterr().out)
    assert code == 0, report
    assert report["status"] == "same" and report["same_tree"]
    assert report["replay_run_id"] != result["run_id"]
    assert git(demo_repo, "rev-parse", f"{report['branch']}^{{tree}}") == git(
        demo_repo, "rev-parse", f"{result['branch']}^{{tree}}"
    )


def test_review_request_changes_becomes_a_fix_task_then_approved(
    karma_build: Any, demo_repo: Path
) -> None:
    script = request_changes_once(demo_script())
    code, result = karma_build(script)
    assert code == 0, result
    assert result["status"] == "succeeded"
    fix = next(t for t in result["tasks"] if t["id"] == "review_fix_1")
    assert fix["status"] == "succeeded" and fix["commit"]
    review = next(g for g in result["gates"] if g["name"] == "review")
    assert review["status"] in {"passed", "warning"}
    assert ">>> to_csv(Inventory())" in git(
        demo_repo, "show", f"{result['branch']}:inventory/export.py"
    )
    assert result["report"] and Path(result["report"]).is_file()


def test_memory_stats_show_the_learned_rates(
    karma_build: Any, demo_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from karma.cli import main

    for _ in range(2):
        code, _result = karma_build(break_attempts(demo_script()), "--no-gates")
        assert code == 0
    assert main(["-C", str(demo_repo), "memory", "stats", "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    failure = stats["classes"]["test_failure"]
    assert failure["seen"] == 2 and failure["resolved"] == 2
    assert failure["remediations"]["retry_with_hint"] == {
        "tries": 2,
        "resolved": 2,
        "success_rate": 1.0,
    }
    assert [run["first_attempt_success"] for run in stats["first_attempt_trend"]] == [0.75, 0.75]


def test_ci_mode_writes_summary_outputs_and_groups(
    karma_build: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    summary, outputs = tmp_path / "summary.md", tmp_path / "outputs.txt"
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    monkeypatch.setenv("GITHUB_OUTPUT", str(outputs))
    code, result = karma_build(None, "--no-gates")
    assert code == 0
    assert f"run-id={result['run_id']}" in outputs.read_text()
    assert "status=succeeded" in outputs.read_text()
    text = summary.read_text()
    assert text.lstrip().startswith("#") and "succeeded" in text.splitlines()[0].lower()
    assert "```mermaid" in text


def test_real_sdk_build_stops_on_a_rejected_key(
    demo_repo: Path,
    tmp_path: Path,
    docker_engine: str,
    model_server: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Through the real anthropic SDK and the loopback server: a 401 mid-build is not a
    task failure to heal; the build stops at once with exit 3 and stays resumable."""
    from karma.cli import main
    from karma.models.script import parse_script

    script = demo_script()
    conversation = next(c for c in script["conversations"] if c.get("name") == "csv_export")
    conversation["replies"][0]["fault"] = {"status": 401, "times": 10}
    model_server.set_script(parse_script(script))
    monkeypatch.setenv("ANTHROPIC_BASE_URL", model_server.anthropic_base_url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-not-a-real-key-0000000000")
    monkeypatch.setenv("KARMA_BASE_IMAGE", docker_engine)
    config = tmp_path / "karma.toml"
    config.write_text(
        '[models]\nsmall = "anthropic:haiku"\nmedium = "anthropic:sonnet"\n'
        'large = "anthropic:opus"\nreviewer = "anthropic:sonnet"\n'
    )
    code = main(["-C", str(demo_repo), "--config", str(config), "build", "--no-gates", REQUEST])
    captured = capsys.readouterr()
    assert code == 3, captured.err
    assert "sk-ant-test" not in captured.err + captured.out
    store = Store(demo_repo / ".karma" / "karma.db")
    run = store.runs()[0]
    assert run.status == "infrastructure"  # stopped resumable, the other tasks drained
    assert run.id in {r.id for r in store.stopped_runs(demo_repo)}
    calls_401 = [c for c in store.model_calls(run.id) if c.error]
    assert calls_401 and "AuthFailed" in calls_401[0].error
