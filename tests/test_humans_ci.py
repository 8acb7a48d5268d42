"""Deciding on another machine: a run record exported, carried (a CI artifact), imported,
and decided by a `/karma ...` comment (`karma ci comment`), on real git and a real store.

Attacks: the record is untrusted (it travelled), so a forged one cannot name another
branch, a path as its id, a table or column of its own, or bring its own approval; the
comment is untrusted text (shell, workflow commands, a key) and decides only as data;
someone who is not an owner, member or collaborator decides nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from karma.cli import main
from karma.errors import KarmaError, UsageError
from karma.handover import comment_author, import_record, parse_comment
from karma.store import Store
from karma.testing.repos import git, init_repo

NOTE_KEY = "ghp_" + "Z9y8X7w6V5u4T3s2R1q0P9o8N7m6L5k4J3i2"


def _waiting(repo: Path, run_id: str = "20261203-100000-abc123") -> str:
    base = git(repo, "rev-parse", "HEAD")
    git(repo, "branch", f"karma/{run_id}")
    store = Store(repo / ".karma" / "karma.db")
    store.create_run(run_id, "add a workflow", repo, status="needs_approval", plan_json="{}",
                     branch=f"karma/{run_id}", base_commit=base, head_commit=base, pid=4242,
                     report_path=str(repo / ".karma" / "reports" / "x.html"))  # fmt: skip
    store.add_pending(
        run_id, "approval", {"commit": base, "paths": ["a.yml"], "gates": ["approval"]}
    )
    old = store.add_pending(run_id, "approval", {"commit": base, "paths": ["b.yml"], "gates": []})
    store.decide_pending(old, "approved", "Mallory", "looks fine")
    store.close()
    return run_id


def _cli(repo: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["-C", str(repo), *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_an_exported_run_is_imported_elsewhere_and_a_comment_rejects_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    here = init_repo(tmp_path / "here")
    run_id = _waiting(here)
    export = tmp_path / "karma-run.json"
    assert _cli(here, capsys, "runs", "export", run_id, "-o", str(export))[0] == 0

    there = tmp_path / "there"
    git(tmp_path, "clone", "-q", str(here), str(there))
    code, out, err = _cli(there, capsys, "runs", "import", str(export))
    assert (code, out.strip()) == (0, run_id), err
    store = Store(there / ".karma" / "karma.db")
    row = store.run(run_id)
    assert row is not None and row.repo == str(there.resolve())
    assert row.pid is None and row.report_path is None
    # The decision taken before the export is history; it never counts again here.
    kept = {json.loads(p.detail_json)["paths"][0]: p for p in store.pending(run_id)}
    assert kept["a.yml"].decision is None
    assert kept["b.yml"].decision == "superseded"
    assert "approved by Mallory before the import" in kept["b.yml"].note
    assert _cli(there, capsys, "runs", "import", str(export))[0] == 2  # already here

    # A stranger's comment decides nothing; neither does a comment without a decision.
    monkeypatch.setenv("KARMA_COMMENT_BODY", "/karma approve")
    monkeypatch.setenv("KARMA_COMMENT_AUTHOR", "eve")
    monkeypatch.setenv("KARMA_COMMENT_ASSOCIATION", "NONE")
    code, _, err = _cli(there, capsys, "ci", "comment", "--run", run_id)
    assert code == 2 and "decides nothing" in err
    monkeypatch.setenv("KARMA_COMMENT_ASSOCIATION", "CONTRIBUTOR")
    assert _cli(there, capsys, "ci", "comment", "--run", run_id)[0] == 2
    monkeypatch.setenv("KARMA_COMMENT_ASSOCIATION", "MEMBER")
    monkeypatch.setenv("KARMA_COMMENT_BODY", "please /karma approve this")
    assert _cli(there, capsys, "ci", "comment", "--run", run_id)[0] == 2
    assert store.pending(run_id, open_only=True)

    # A member's rejection, its note shell and workflow commands and a key: data only.
    note = f'$(touch {tmp_path}/pwned) `id`; "; exit 1\n::error::x {NOTE_KEY}'
    monkeypatch.setenv("KARMA_COMMENT_BODY", f"/karma reject {note}")
    code, _, err = _cli(there, capsys, "ci", "comment", "--run", run_id)
    assert code == 0, err
    assert not (tmp_path / "pwned").exists()
    row = store.run(run_id)
    assert row is not None and row.status == "failed"
    assert row.reason.startswith("rejected by eve (GitHub): $(touch")
    [decided] = [p for p in store.pending(run_id) if p.decision == "rejected"]
    assert decided.decided_by == "eve (GitHub)" and NOTE_KEY not in decided.note
    store.close()


def _record(run_id: str = "r1", **run: Any) -> dict[str, Any]:
    row = {"id": run_id, "request": "x", "repo": "/elsewhere", "status": "needs_approval",
           "created_at": "2026-12-03T10:00:00Z", "branch": f"karma/{run_id}",
           "base_commit": "a" * 40, **run}  # fmt: skip
    return {"format": "karma-run/1", "run_id": run_id, "tables": {"runs": [row]}}


@pytest.mark.parametrize(
    ("record", "why"),
    [
        ({"format": "karma-memory/1"}, "not a run record"),
        (_record("../../etc"), "not a run id"),
        (_record("r1", branch="main"), "branch must be karma/r1"),
        (_record("r1", base_commit="HEAD~1"), "not a commit id"),
        ({**_record(), "run_id": "r2"}, "branch must be karma/r2"),
        (
            {**_record(), "tables": {**_record()["tables"], "failures": [{"signature": "s"}]}},
            "not a run's table",
        ),
        (
            {**_record(), "tables": {"runs": [{**_record()["tables"]["runs"][0], "x": 1}]}},
            "unknown runs column",
        ),
        (
            {**_record(), "tables": {**_record()["tables"], "tasks": [{"run_id": "other"}]}},
            "another run",
        ),
        (_record("r1", plan_json={"nested": True}), "plain values"),
        ({**_record(), "tables": {"runs": []}}, "exactly one run"),
    ],
)
def test_a_forged_record_is_refused_whole(tmp_path: Path, record: Any, why: str) -> None:
    store = Store(tmp_path / "k.db")
    with pytest.raises(KarmaError, match=why):
        import_record(store, record, tmp_path)
    assert store.run("r1") is None and store.run("r2") is None
    store.close()


@pytest.mark.parametrize(
    ("body", "verb", "text", "task"),
    [
        ("/karma approve", "approve", "", None),
        (
            "  /karma approve reviewed the workflow\r\nthanks",
            "approve",
            "reviewed the workflow\nthanks",
            None,
        ),
        ("/karma reject not this way", "reject", "not this way", None),
        (
            "/karma answer csv_export the columns are sku, name",
            "answer",
            "the columns are sku, name",
            "csv_export",
        ),
        (
            "/karma answer csv_export\nuse the csv module\n$(id)",
            "answer",
            "use the csv module\n$(id)",
            "csv_export",
        ),
    ],
)
def test_a_comment_holds_a_decision(body: str, verb: str, text: str, task: str | None) -> None:
    got = parse_comment(body)
    assert got is not None and (got.verb, got.text, got.task) == (verb, text, task)


@pytest.mark.parametrize(
    "body",
    [
        "",
        "LGTM /karma approve",
        "/karma approved",
        "/karma approve-all",
        "/karma merge",
        "/karma answer",
        "/karma answer csv_export",
        "/karma answer ../../x try this",
        "/karma answer $(id) try this",
        "/karmaapprove",
    ],
)
def test_a_comment_without_a_well_formed_decision_decides_nothing(body: str) -> None:
    assert parse_comment(body) is None


def test_only_owners_members_and_collaborators_decide() -> None:
    for association in ("OWNER", "MEMBER", "COLLABORATOR"):
        assert comment_author("octo-cat", association) == "octo-cat (GitHub)"
    for association in ("CONTRIBUTOR", "FIRST_TIME_CONTRIBUTOR", "NONE", "", "owner"):
        with pytest.raises(UsageError):
            comment_author("octo-cat", association)
    with pytest.raises(UsageError):
        comment_author("::error::x\n", "OWNER")
