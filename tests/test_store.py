"""The run store: WAL, versioned schema, written as things happen."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from karma.errors import StoreError
from karma.events import Event
from karma.store import MIGRATIONS, Store


def test_wal_and_schema_version(tmp_path: Path) -> None:
    store = Store(tmp_path / "k.db")
    assert store.schema_version == len(MIGRATIONS)
    mode = sqlite3.connect(tmp_path / "k.db").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_every_write_is_visible_to_another_process_at_once(tmp_path: Path) -> None:
    store = Store(tmp_path / "k.db")
    store.create_run("r1", "add a thing", tmp_path)
    store.upsert_task("r1", "a", title="A", kind="code", status="running")
    attempt = store.add_attempt("r1", "a", 1, model="scripted:small")
    store.record_event(Event("task_started", "r1", "a", {"tier": "small"}))
    other = sqlite3.connect(tmp_path / "k.db")  # as a crashed process would leave it
    assert other.execute("SELECT status FROM runs").fetchone() == ("running",)
    assert other.execute("SELECT number FROM attempts WHERE id = ?", (attempt,)).fetchone() == (1,)
    assert other.execute("SELECT kind FROM events").fetchone() == ("task_started",)


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "k.db")
    db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    db.close()
    with pytest.raises(StoreError, match="newer than this KARMA knows"):
        Store(tmp_path / "k.db")


def test_unknown_columns_are_refused(tmp_path: Path) -> None:
    store = Store(tmp_path / "k.db")
    store.create_run("r1", "x", tmp_path)
    with pytest.raises(StoreError, match="unknown runs column"):
        store.update_run("r1", status="done", bogus=1)


def test_failures_are_counted_by_signature(tmp_path: Path) -> None:
    store = Store(tmp_path / "k.db")
    store.note_failure("sig", "test_failure", "FAILED x")
    store.note_failure("sig", "test_failure", "FAILED x")
    assert [(f["signature"], f["count"]) for f in store.failures()] == [("sig", 2)]


def test_the_last_tests_gate_time_decides_whether_checks_select(tmp_path: Path) -> None:
    store = Store(tmp_path / "karma.db")
    assert store.last_gate_seconds("tests") is None
    for status, seconds in (("passed", 300.0), ("failed", 40.0), ("unavailable", 0.1)):
        store.add_gate_result("r1", name="tests", status=status, blocking=1,
                              duration_s=seconds, findings_json="[]", ts="t")  # fmt: skip
    assert store.last_gate_seconds("tests") == 40.0  # an unavailable gate timed nothing
