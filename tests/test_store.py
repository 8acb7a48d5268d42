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


def test_each_typed_row_has_one_field_per_column_of_its_table(tmp_path: Path) -> None:
    """A migration that adds a column fails here until its row type gains the field."""
    import dataclasses

    from karma.store.rows import ROW_TYPES

    Store(tmp_path / "k.db").close()
    db = sqlite3.connect(tmp_path / "k.db")
    for row_type in ROW_TYPES:
        columns = [col[1] for col in db.execute(f"PRAGMA table_info({row_type.TABLE})")]
        assert [f.name for f in dataclasses.fields(row_type)] == columns, row_type.TABLE


def test_a_row_that_lacks_a_column_fails_loudly(tmp_path: Path) -> None:
    from karma.store import AttemptRow, RunRow

    store = Store(tmp_path / "k.db")
    store.create_run("r1", "add a thing", tmp_path)
    store.add_attempt("r1", "a", 1, model="scripted:small")
    run = store.run("r1")
    assert run is not None and (run.id, run.status, run.cost_usd) == ("r1", "running", 0.0)
    assert run.as_dict()["request"] == "add a thing"
    [attempt] = store.attempts("r1", "a")
    assert (attempt.task_id, attempt.number, attempt.model) == ("a", 1, "scripted:small")
    with pytest.raises(StoreError, match=r"runs row without column.*: request"):
        store.typed(RunRow, "SELECT id, status FROM runs")
    with pytest.raises(StoreError, match=r"attempts row with unknown column.*: extra"):
        store.typed(AttemptRow, "SELECT *, 1 AS extra FROM attempts")
