"""The elevated tier: notify and proceed unless overridden. An attempt that passed with an
elevated-tier remedy (quarantine_flaky_test) leaves a `notice` (once), the run does not
wait for it, and `karma reject RUN --task T` overrides it inside `approval.override_h`
(the run ends `failed`), not after. On a real store, through the real CLI.

Attack: the notice's summary is the attempt's summary (model text): shown inert."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from karma.cli import main
from karma.config import ApprovalConfig
from karma.events import iso, utcnow
from karma.notify import comment_markdown, payload
from karma.store import Store
from karma.waiting import commands, describe, expire_waiting, record_notices, summary

EVIL = "quarantined \x1b[2J::error::pwned test_sometimes"


def _run(repo: Path, status: str = "succeeded", remedy: str = "quarantine_flaky_test") -> Store:
    store = Store(repo / ".karma" / "karma.db")
    store.create_run("r1", "x", repo, status=status, branch="karma/r1")
    store.upsert_task("r1", "csv", title="csv", kind="code", status="succeeded", attempts=2)
    first = store.add_attempt("r1", "csv", 1, model="scripted:small")
    store.update_attempt(first, status="failed", remediation=remedy)
    second = store.add_attempt("r1", "csv", 2, model="scripted:small")
    store.update_attempt(second, status="succeeded", summary=EVIL)
    # Another task healed by an immediate-tier remedy: nobody needs to be told.
    store.upsert_task("r1", "cli", title="cli", kind="code", status="succeeded", attempts=2)
    store.update_attempt(store.add_attempt("r1", "cli", 1), status="failed",
                         remediation="retry_with_hint")  # fmt: skip
    store.update_attempt(store.add_attempt("r1", "cli", 2), status="succeeded")
    return store


def test_an_elevated_remedy_is_noticed_once_and_never_waits(git_repo: Path) -> None:
    store = _run(git_repo)
    record_notices(store, "r1", ApprovalConfig())
    record_notices(store, "r1", ApprovalConfig())  # a resumed run's second end: still one
    [notice] = store.pending("r1", open_only=True)
    assert (notice.kind, notice.task_id) == ("notice", "csv")
    item = summary(notice)
    assert item["remediation"] == "quarantine_flaky_test" and item["attempt"] == 2
    assert item["until"] > iso(utcnow() + timedelta(hours=23))
    line = describe(item)
    assert line.startswith("told at ") and "may be overridden until" in line
    assert "\x1b" not in line and "::error::" not in line and "pwned" in line
    assert commands("r1", [notice]) == ['karma reject r1 --task csv --note "why"']
    assert store.run("r1").status == "succeeded"  # type: ignore[union-attr]
    # The notification tells, and says how to override.
    body = comment_markdown(payload(store.run("r1").as_dict(), [item], commands("r1", [notice])))
    assert "Told (the build went on with it)" in body and "/karma reject" in body
    assert "Waiting for a human" not in body
    # A notice holds no waiting run past approval.timeout_h open.
    store.update_run("r1", status="needs_approval")
    store.add_pending("r1", "approval", {"commit": "c", "paths": [], "gates": []})
    store.query("UPDATE pending SET since = ?", (iso(utcnow() - timedelta(hours=5)),))
    store.query("UPDATE pending SET since = ? WHERE kind = 'notice'", (iso(utcnow()),))
    assert expire_waiting(store, ApprovalConfig(timeout_h=1, on_timeout="reject"), git_repo) == [
        "r1"
    ]
    store.close()


def test_told_only_when_override_h_is_0(git_repo: Path) -> None:
    store = _run(git_repo)
    record_notices(store, "r1", ApprovalConfig(override_h=0))
    [notice] = store.pending("r1", open_only=True)
    assert describe(summary(notice)).endswith("told only")
    assert commands("r1", [notice]) == []
    store.close()


def _cli(repo: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["-C", str(repo), *args])
    got = capsys.readouterr()
    return code, got.out, got.err


def test_reject_overrides_inside_the_window_only(
    git_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = _run(git_repo)
    record_notices(store, "r1", ApprovalConfig())
    code, out, _ = _cli(git_repo, capsys, "show", "r1")
    assert code == 0 and "told at" in out and "\x1b" not in out
    assert _cli(git_repo, capsys, "reject", "r1", "--task", "cli")[0] == 2  # no notice
    code, _, err = _cli(git_repo, capsys, "reject", "r1", "--task", "csv", "--note",
                        "do not skip that test", "--by", "Dev")  # fmt: skip
    assert code == 0, err
    row = store.run("r1")
    assert row is not None and row.status == "failed"
    assert row.reason == (
        "rejected by Dev (overrides csv's quarantine_flaky_test): do not skip that test"
    )
    [decided] = store.pending("r1")
    assert (decided.decision, decided.decided_by) == ("rejected", "Dev")
    assert _cli(git_repo, capsys, "reject", "r1")[0] == 2  # decided already
    store.close()


def test_too_late_to_override(git_repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = _run(git_repo)
    record_notices(store, "r1", ApprovalConfig())
    [notice] = store.pending("r1")
    detail = {**json.loads(notice.detail_json), "until": iso(utcnow() - timedelta(hours=1))}
    store.query("UPDATE pending SET detail_json = ?", (json.dumps(detail),))
    code, _, err = _cli(git_repo, capsys, "reject", "r1", "--task", "csv")
    assert code == 2 and "too late to override" in err
    assert store.run("r1").status == "succeeded"  # type: ignore[union-attr]
    store.close()
