"""Retention on a real SQLite store and a real git repository: `karma runs prune`."""

from __future__ import annotations

import json
import os
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from karma.cli import main
from karma.errors import UsageError
from karma.events import Event, iso, utcnow
from karma.retention import AUTO_LIMIT, parse_age, prune, prune_expired
from karma.store import RUN_TABLES, Store
from karma.testing.repos import git

DEAD_PID = 2**22 + 12345  # above the default pid_max: no such process


def add_run(
    store: Store, repo: Path, run_id: str, days_ago: float, status: str, **run: object
) -> None:
    created = iso(utcnow() - timedelta(days=days_ago))
    store.create_run(run_id, f"request {run_id}", repo, created_at=created, status=status, **run)
    store.upsert_task(run_id, "a", title="A", kind="code", status="succeeded")
    attempt = store.add_attempt(run_id, "a", 1, model="m")
    store.update_attempt(attempt, summary="x" * 20_000)  # something for VACUUM to give back
    store.add_model_call(
        run_id=run_id, task_id="a", attempt=1, seq=0, purpose="agent", model="m",
        request_hash="h", request_json=json.dumps({"big": "y" * 50_000}), reply_json="{}",
    )  # fmt: skip
    store.add_step(
        run_id=run_id, task_id="a", attempt=1, step=0, tool="run", arguments_json="{}",
        output="z" * 20_000, is_error=0,
    )  # fmt: skip
    store.record_event(Event("task_started", run_id, "a", {}))
    store.add_gate_result(
        run_id, name="tests", status="passed", blocking=1, duration_s=1.0, findings_json="[]"
    )
    store.add_pending(run_id, "approval", {"commit": "c", "paths": [], "gates": []})
    store.add_outcome(
        run_id=run_id, task_id="a", pattern_id="p", failure_class="c", remediation="r",
        outcome="resolved",
    )  # fmt: skip


@pytest.fixture
def repo(git_repo: Path) -> Path:
    store = Store(git_repo / ".karma" / "karma.db")
    add_run(store, git_repo, "old-done", 40, "succeeded")
    add_run(store, git_repo, "old-failed", 35, "failed")
    add_run(store, git_repo, "old-stopped", 50, "interrupted")
    add_run(store, git_repo, "old-approval", 45, "needs_approval")
    add_run(store, git_repo, "old-dead", 60, "running", pid=DEAD_PID)
    add_run(store, git_repo, "old-alive", 70, "running", pid=os.getpid())
    add_run(store, git_repo, "new-done", 1, "succeeded")
    store.close()
    reports = git_repo / ".karma" / "reports"
    reports.mkdir(parents=True)
    for run_id in ("old-done", "new-done"):
        (reports / f"{run_id}.html").write_text("<html></html>")
        (reports / f"{run_id}.json").write_text("{}")
    outside = git_repo.parent / "outside.html"
    outside.write_text("not KARMA's")
    (reports / "old-failed.html").symlink_to(outside)  # a link is not followed, nor removed
    git(git_repo, "branch", "karma/old-done")
    git(git_repo, "branch", "karma-work/old-done/a-1")
    git(git_repo, "branch", "karma/new-done")
    return git_repo


def _ids(repo: Path) -> set[str]:
    db = sqlite3.connect(repo / ".karma" / "karma.db")
    return {row[0] for row in db.execute("SELECT id FROM runs")}


def _prune(repo: Path, capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, object]:
    capsys.readouterr()
    assert main(["-C", str(repo), "runs", "prune", "--json", *args]) == 0
    result: dict[str, object] = json.loads(capsys.readouterr().out)
    return result


def test_prune_removes_old_finished_runs_and_their_reports_and_keeps_the_rest(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = repo / ".karma" / "karma.db"
    result = _prune(repo, capsys, "--older-than", "30d")
    assert sorted(result["pruned"]) == ["old-done", "old-failed"]  # type: ignore[arg-type]
    assert sorted(result["kept_unfinished"]) == [  # type: ignore[arg-type]
        "old-alive", "old-approval", "old-dead", "old-stopped",
    ]  # fmt: skip
    assert _ids(repo) == {"old-stopped", "old-approval", "old-dead", "old-alive", "new-done"}
    conn = sqlite3.connect(db)
    for table in RUN_TABLES:
        column = "id" if table == "runs" else "run_id"
        gone = conn.execute(
            f"SELECT COUNT(*) FROM {table} WHERE {column} IN ('old-done', 'old-failed')"
        ).fetchone()[0]
        assert gone == 0, table
    # what KARMA learned stays
    assert conn.execute("SELECT COUNT(*) FROM remediation_outcomes").fetchone()[0] == 7
    reports = repo / ".karma" / "reports"
    assert sorted(p.name for p in reports.iterdir()) == [
        "new-done.html", "new-done.json", "old-failed.html",
    ]  # fmt: skip
    assert (repo.parent / "outside.html").read_text() == "not KARMA's"
    # branches are listed, never deleted
    assert sorted(result["branches"]) == ["karma-work/old-done/a-1", "karma/old-done"]  # type: ignore[arg-type]
    assert git(repo, "branch", "--list", "karma/old-done") != ""
    assert result["bytes_after"] < result["bytes_before"]  # type: ignore[operator]


def test_dry_run_removes_nothing(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = _ids(repo)
    result = _prune(repo, capsys, "--older-than", "30d", "--dry-run")
    assert result["dry_run"] is True and len(result["pruned"]) == 2  # type: ignore[arg-type]
    assert _ids(repo) == before
    assert (repo / ".karma" / "reports" / "old-done.html").exists()


def test_keep_and_include_unfinished_but_never_a_live_run(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = _prune(repo, capsys, "--keep", "2", "--include-unfinished")
    # the two newest (new-done, old-failed) stay; old-alive's process is this one
    assert _ids(repo) == {"new-done", "old-failed", "old-alive"}
    assert result["kept_unfinished"] == ["old-alive"]


def test_without_flags_the_configured_retention_applies(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A repository's own karma.toml cannot have its record pruned (a trusted-only key).
    (repo / "karma.toml").write_text("[store]\nretention_days = 1\n")
    user = tmp_path / "user-config.toml"
    monkeypatch.setenv("KARMA_CONFIG", str(user))
    user.write_text("[store]\nretention_days = 38\n")
    result = _prune(repo, capsys)
    assert result["pruned"] == ["old-done"]  # 40 days old; old-failed is 35
    user.write_text("[store]\nretention_days = 0\n")
    assert main(["-C", str(repo), "runs", "prune"]) == 2
    assert "retention_days is 0" in capsys.readouterr().err


def test_the_automatic_prune_is_bounded_and_does_not_vacuum(tmp_path: Path) -> None:
    store = Store(tmp_path / "k.db")
    for n in range(AUTO_LIMIT + 5):
        store.create_run(
            f"r{n:03}", "x", tmp_path, status="succeeded",
            created_at=iso(utcnow() - timedelta(days=100 + n)),
        )  # fmt: skip
    assert prune_expired(store, 0, tmp_path / "reports") is None
    result = prune_expired(store, 90, tmp_path / "reports")
    assert result is not None and len(result.runs) == AUTO_LIMIT
    assert result.runs[0] == f"r{AUTO_LIMIT + 4:03}"  # oldest first
    assert len(store.runs(100)) == 5


def test_an_age_is_a_number_and_a_unit(tmp_path: Path) -> None:
    assert parse_age("30d") == timedelta(days=30) == parse_age("30")
    assert parse_age("12h") == timedelta(hours=12) and parse_age("2w") == timedelta(weeks=2)
    for bad in ("-1d", "1y", "", "1e3", "30 d", "\u0663d"):
        with pytest.raises(UsageError):
            parse_age(bad)
    with pytest.raises(UsageError, match="say which runs"):
        prune(Store(tmp_path / "k.db"), reports_dir=tmp_path)


def test_export_is_every_row_of_the_run_redacted(
    repo: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from karma.text.redact import remember_host_secrets

    monkeypatch.setenv("SERVICE_API_KEY", "Rk2Lm9Qp4Zw7Kc3Jd8Vx")
    remember_host_secrets()
    # a row written by an older KARMA, before the store redacted
    db = sqlite3.connect(repo / ".karma" / "karma.db")
    db.execute("UPDATE steps SET output = 'key Rk2Lm9Qp4Zw7Kc3Jd8Vx' WHERE run_id = 'new-done'")
    db.commit()
    capsys.readouterr()
    assert main(["-C", str(repo), "runs", "export", "new-d"]) == 0
    text = capsys.readouterr().out
    data = json.loads(text)
    assert data["run_id"] == "new-done"
    assert {t: len(rows) for t, rows in data["tables"].items()} == {t: 1 for t in RUN_TABLES}
    assert "Rk2Lm9Qp4Zw7Kc3Jd8Vx" not in text
    assert "[REDACTED:env.SERVICE_API_KEY]" in data["tables"]["steps"][0]["output"]
