"""`karma why`: a line of a real repository back to its task, attempt, model and request."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from runfixture import REQUEST, FinishedRun, git

from karma.cli import main
from karma.errors import UsageError
from karma.provenance import render_text, why


def test_why_a_line_names_task_model_request_and_remediation(finished_run: FinishedRun) -> None:
    # The file exists only on the build branch: why finds it there through the record.
    prov = why("inventory/report.py:2", repo=finished_run.repo, store=finished_run.store)
    assert prov.commit == finished_run.commits["t2"]
    assert prov.trailers["Karma-Task"] == "t2" and prov.model == "scripted:medium"
    assert prov.request == REQUEST
    assert prov.task and prov.task["title"] == "Low-stock report"
    assert prov.line_text and "i.qty < limit" in prov.line_text
    assert [a["failure_class"] for a in prov.prior_attempts] == ["test_failure"]
    assert prov.remediations[0]["remediation"] == "retry_with_hint"
    assert prov.reply_excerpt and "[tool write_file]" in prov.reply_excerpt
    assert prov.prompt_excerpt and prov.prompt_excerpt.startswith("Task t2")
    text = render_text(prov)
    for needle in (
        "task    t2  Low-stock report",
        "model scripted:medium",
        REQUEST,
        "earlier attempt 1: failed",
        "remediation retry_with_hint",
    ):
        assert needle in text
    assert "\x1b" not in text


def test_why_a_commit_and_a_human_commit(finished_run: FinishedRun) -> None:
    prov = why(finished_run.commits["t1"][:10], repo=finished_run.repo, store=finished_run.store)
    assert prov.trailers["Karma-Task"] == "t1" and prov.path is None
    human = why("README.md:1", repo=finished_run.repo, store=finished_run.store)
    assert not human.by_karma and "not written by KARMA" in render_text(human)
    with pytest.raises(UsageError, match="neither a file"):
        why("deadbeef", repo=finished_run.repo, store=finished_run.store)


def test_why_cli(finished_run: FinishedRun, capsys) -> None:
    args = ["-C", str(finished_run.repo), "--db", str(finished_run.store.path), "why"]
    assert main([*args, "inventory/csv_export.py:4", "--rev", f"karma/{finished_run.run_id}"]) == 0
    out = capsys.readouterr().out
    assert "task    t1  CSV writer" in out and "model scripted:small" in out and REQUEST in out
    assert main([*args, "tests/test_csv.py:1", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["task_id"] == "t3" and data["model"] == "scripted:small"
    # model text in the reply excerpt cannot start a workflow command in a log
    assert main([*args, "tests/test_csv.py:1"]) == 0
    assert not [ln for ln in capsys.readouterr().out.splitlines() if ln.lstrip().startswith("::")]


def test_why_in_a_repo_without_a_store(git_repo: Path) -> None:
    git(
        git_repo,
        "commit",
        "--allow-empty",
        "-qm",
        "x\n\nKarma-Run: r9\nKarma-Task: t1\nKarma-Attempt: 1\nKarma-Model: scripted:small",
    )
    prov = why("HEAD", repo=git_repo, store=None)
    assert prov.by_karma and prov.model == "scripted:small" and prov.request is None
