"""The run store: SQLite in WAL mode, written as things happen.

Runs, tasks, attempts, model calls, agent steps, events, gate results, and the healing
memory (failures seen and remediation outcomes). Every write is committed at once, so a
crash loses nothing already done; the store is the resume point, the debugger, the
source of replay and of what KARMA learns. The schema is versioned (`PRAGMA
user_version`) and migrated forward on open.

Every value written is redacted on the way in (`karma.redaction`): model requests and
replies, tool output, events, reasons, findings. Each write path (`_insert`, `_update`,
and the connection `transaction()` hands out) passes its parameters through `_clean`, so
no credential and no value of a host secret variable is ever in the file. Old runs are
removed by `prune` (`karma runs prune`, `store.retention_days`).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from karma.errors import StoreError
from karma.events import Event, iso, utcnow
from karma.text.redact import redact, redact_json, remember_host_secrets

Row = dict[str, Any]

MIGRATIONS: Sequence[str] = (
    # 1: the initial schema
    """
    CREATE TABLE runs (
        id TEXT PRIMARY KEY, request TEXT NOT NULL, repo TEXT NOT NULL,
        status TEXT NOT NULL, branch TEXT, base_commit TEXT, head_commit TEXT,
        created_at TEXT NOT NULL, finished_at TEXT, cost_usd REAL NOT NULL DEFAULT 0,
        plan_json TEXT, config_json TEXT, report_path TEXT, reason TEXT, pid INTEGER,
        source TEXT
    );
    CREATE TABLE tasks (
        run_id TEXT NOT NULL REFERENCES runs(id), id TEXT NOT NULL,
        title TEXT NOT NULL, kind TEXT NOT NULL, status TEXT NOT NULL,
        tier TEXT, model TEXT, estimated_tokens INTEGER, calibrated_tokens INTEGER,
        attempts INTEGER NOT NULL DEFAULT 0, tokens_in INTEGER NOT NULL DEFAULT 0,
        tokens_out INTEGER NOT NULL DEFAULT 0, cost_usd REAL NOT NULL DEFAULT 0,
        started_at TEXT, finished_at TEXT, commit_sha TEXT, image TEXT,
        container_id TEXT, reason TEXT, routing_json TEXT, files_json TEXT,
        PRIMARY KEY (run_id, id)
    );
    CREATE TABLE attempts (
        id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, task_id TEXT NOT NULL,
        number INTEGER NOT NULL, model TEXT, tier TEXT, status TEXT NOT NULL,
        started_at TEXT NOT NULL, finished_at TEXT, failure_class TEXT, pattern_id TEXT,
        signature TEXT, remediation TEXT, evidence_json TEXT, summary TEXT,
        tokens_in INTEGER NOT NULL DEFAULT 0, tokens_out INTEGER NOT NULL DEFAULT 0,
        cost_usd REAL NOT NULL DEFAULT 0, container_id TEXT, branch TEXT,
        UNIQUE (run_id, task_id, number)
    );
    CREATE TABLE model_calls (
        id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT, task_id TEXT, attempt INTEGER,
        seq INTEGER NOT NULL, purpose TEXT NOT NULL, model TEXT NOT NULL,
        request_hash TEXT NOT NULL, request_json TEXT NOT NULL, reply_json TEXT,
        input_tokens INTEGER NOT NULL DEFAULT 0, output_tokens INTEGER NOT NULL DEFAULT 0,
        cache_read_tokens INTEGER NOT NULL DEFAULT 0,
        cache_write_tokens INTEGER NOT NULL DEFAULT 0,
        cost_usd REAL NOT NULL DEFAULT 0, latency_ms REAL NOT NULL DEFAULT 0,
        error TEXT, ts TEXT NOT NULL
    );
    CREATE INDEX model_calls_by_task ON model_calls (run_id, task_id, attempt, seq);
    CREATE TABLE steps (
        id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, task_id TEXT NOT NULL,
        attempt INTEGER NOT NULL, step INTEGER NOT NULL, tool TEXT NOT NULL,
        arguments_json TEXT NOT NULL, output TEXT NOT NULL, is_error INTEGER NOT NULL,
        ts TEXT NOT NULL
    );
    CREATE TABLE events (
        id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, task_id TEXT,
        kind TEXT NOT NULL, data_json TEXT NOT NULL, ts TEXT NOT NULL
    );
    CREATE INDEX events_by_run ON events (run_id, id);
    CREATE TABLE gate_results (
        id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, name TEXT NOT NULL,
        status TEXT NOT NULL, blocking INTEGER NOT NULL, duration_s REAL NOT NULL,
        findings_json TEXT NOT NULL, ts TEXT NOT NULL
    );
    CREATE TABLE failures (
        signature TEXT PRIMARY KEY, failure_class TEXT NOT NULL, pattern_id TEXT,
        first_seen TEXT NOT NULL, last_seen TEXT NOT NULL, count INTEGER NOT NULL,
        example TEXT NOT NULL, files_json TEXT NOT NULL DEFAULT '[]', kind TEXT,
        hint TEXT
    );
    CREATE TABLE remediation_outcomes (
        id INTEGER PRIMARY KEY AUTOINCREMENT, ts TEXT NOT NULL, run_id TEXT,
        task_id TEXT, pattern_id TEXT NOT NULL, failure_class TEXT NOT NULL,
        signature TEXT, remediation TEXT NOT NULL, outcome TEXT NOT NULL,
        seconds REAL NOT NULL DEFAULT 0, side_effects TEXT
    );
    CREATE INDEX outcomes_by_pattern ON remediation_outcomes (pattern_id, remediation);
    CREATE TABLE specs (
        key TEXT PRIMARY KEY, file TEXT NOT NULL, status TEXT NOT NULL, run_id TEXT,
        cost_usd REAL NOT NULL DEFAULT 0, reason TEXT, ts TEXT NOT NULL
    );
    """,
    # 2: steps and gate results found by run (replay, reports, retention)
    """
    CREATE INDEX steps_by_task ON steps (run_id, task_id, attempt);
    CREATE INDEX gate_results_by_run ON gate_results (run_id);
    CREATE INDEX runs_by_age ON runs (created_at);
    """,
    # 3: what a run waits for (an approval, an answer to an escalation) and the decisions
    """
    CREATE TABLE pending (
        id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, task_id TEXT,
        kind TEXT NOT NULL, detail_json TEXT NOT NULL, since TEXT NOT NULL,
        decision TEXT, decided_by TEXT, decided_at TEXT, note TEXT
    );
    CREATE INDEX pending_by_run ON pending (run_id, id);
    """,
    # 4: where a task's attempts ran (a Dask worker and its Docker engine)
    """
    ALTER TABLE tasks ADD COLUMN worker TEXT;
    ALTER TABLE tasks ADD COLUMN docker_host TEXT;
    ALTER TABLE attempts ADD COLUMN worker TEXT;
    ALTER TABLE attempts ADD COLUMN docker_host TEXT;
    """,
)

RUN_TABLES: Sequence[str] = (
    "pending", "steps", "events", "model_calls", "gate_results", "attempts", "tasks", "runs"
)  # fmt: skip
"""What a run owns, dependents first. The healing memory (`failures`,
`remediation_outcomes`) and the nightly `specs` outlive the runs they came from."""

_COLUMNS: dict[str, frozenset[str]] = {}


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _clean(value: Any) -> Any:
    """A value as the store may keep it: text redacted (JSON text string by string)."""
    if not isinstance(value, str) or not value:
        return value
    if value[0] in "{[":
        return redact_json(value)
    return redact(value)


class Writer:
    """The connection of a `transaction()`: every parameter of `execute` is redacted.

    Parameters of a lookup are redacted too, which keeps them comparable with the
    (redacted) values stored.
    """

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        return self._db.execute(sql, tuple(_clean(v) for v in params))


class Store:
    """One SQLite connection shared by the engine's threads behind a lock."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                path, isolation_level=None, check_same_thread=False, timeout=30
            )
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"{path}: cannot open the run store: {exc}") from None
        self._db.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        remember_host_secrets()  # the secrets of the environment the store is opened in
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._migrate()

    # -- plumbing -------------------------------------------------------------

    def _migrate(self) -> None:
        # The version is read under the write lock: two processes opening a new store at
        # once must not both create the schema.
        with self._raw_transaction():
            version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
            if version > len(MIGRATIONS):
                raise StoreError(
                    f"{self.path}: schema version {version} is newer than this KARMA knows",
                    tip="upgrade KARMA, or point --db at another store",
                )
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                for statement in script.split(";"):
                    if statement.strip():
                        self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version = {number}")
        for (table,) in self._db.execute("SELECT name FROM sqlite_master WHERE type='table'"):
            cols = self._db.execute(f"PRAGMA table_info({table})").fetchall()
            _COLUMNS[table] = frozenset(col[1] for col in cols)

    @property
    def schema_version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    @contextmanager
    def transaction(self) -> Iterator[Writer]:
        with self._raw_transaction() as db:
            yield Writer(db)

    @contextmanager
    def _raw_transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _checked(self, table: str, fields: Mapping[str, Any]) -> None:
        unknown = set(fields) - _COLUMNS[table]
        if unknown:
            raise StoreError(f"unknown {table} column(s): {', '.join(sorted(unknown))}")

    def _insert(self, table: str, fields: Mapping[str, Any], *, replace: bool = False) -> int:
        self._checked(table, fields)
        verb = "INSERT OR REPLACE" if replace else "INSERT"
        names = ", ".join(fields)
        marks = ", ".join("?" for _ in fields)
        with self._lock:
            cur = self._db.execute(
                f"{verb} INTO {table} ({names}) VALUES ({marks})",
                tuple(_clean(v) for v in fields.values()),
            )
            return int(cur.lastrowid or 0)

    def _update(self, table: str, where: Mapping[str, Any], fields: Mapping[str, Any]) -> None:
        if not fields:
            return
        self._checked(table, {**where, **fields})
        sets = ", ".join(f"{name} = ?" for name in fields)
        cond = " AND ".join(f"{name} = ?" for name in where)
        with self._lock:
            self._db.execute(
                f"UPDATE {table} SET {sets} WHERE {cond}",  # noqa: S608 (names checked)
                tuple(_clean(v) for v in (*fields.values(), *where.values())),
            )

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        with self._lock:
            return [dict(row) for row in self._db.execute(sql, tuple(params)).fetchall()]

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- runs and tasks -------------------------------------------------------------

    def create_run(self, run_id: str, request: str, repo: Path, **fields: Any) -> None:
        self._insert(
            "runs",
            {
                "id": run_id,
                "request": request,
                "repo": str(repo),
                "status": "running",
                "created_at": iso(utcnow()),
                **fields,
            },
        )

    def update_run(self, run_id: str, **fields: Any) -> None:
        self._update("runs", {"id": run_id}, fields)

    def run(self, run_id: str) -> Row | None:
        rows = self.query("SELECT * FROM runs WHERE id = ?", (run_id,))
        return rows[0] if rows else None

    def runs(self, limit: int = 50) -> list[Row]:
        return self.query("SELECT * FROM runs ORDER BY created_at DESC LIMIT ?", (limit,))

    def stopped_runs(self, repo: Path) -> list[Row]:
        """Runs of `repo` that ended before their end, newest first: interrupted, Docker
        lost, or still `running` (killed, unless its `pid` lives: the caller checks)."""
        return self.query(
            "SELECT * FROM runs WHERE repo = ? AND plan_json IS NOT NULL AND status IN "
            "('interrupted', 'infrastructure', 'running') ORDER BY created_at DESC, rowid DESC",
            (str(repo),),
        )

    def upsert_task(self, run_id: str, task_id: str, **fields: Any) -> None:
        if self.query("SELECT 1 FROM tasks WHERE run_id = ? AND id = ?", (run_id, task_id)):
            self._update("tasks", {"run_id": run_id, "id": task_id}, fields)
        else:
            self._insert("tasks", {"run_id": run_id, "id": task_id, **fields})

    def tasks(self, run_id: str) -> list[Row]:
        return self.query("SELECT * FROM tasks WHERE run_id = ? ORDER BY rowid", (run_id,))

    def add_attempt(self, run_id: str, task_id: str, number: int, **fields: Any) -> int:
        return self._insert(
            "attempts",
            {
                "run_id": run_id,
                "task_id": task_id,
                "number": number,
                "status": "running",
                "started_at": iso(utcnow()),
                **fields,
            },
        )

    def update_attempt(self, attempt_id: int, **fields: Any) -> None:
        self._update("attempts", {"id": attempt_id}, fields)

    def update_attempt_by_number(
        self, run_id: str, task_id: str, number: int, **fields: Any
    ) -> None:
        self._update("attempts", {"run_id": run_id, "task_id": task_id, "number": number}, fields)

    def attempts(self, run_id: str, task_id: str | None = None) -> list[Row]:
        if task_id is None:
            return self.query("SELECT * FROM attempts WHERE run_id = ? ORDER BY id", (run_id,))
        return self.query(
            "SELECT * FROM attempts WHERE run_id = ? AND task_id = ? ORDER BY id",
            (run_id, task_id),
        )

    # -- the exchange record ------------------------------------------------------------

    def add_model_call(self, **fields: Any) -> int:
        return self._insert("model_calls", {"ts": iso(utcnow()), **fields})

    def model_calls(self, run_id: str, task_id: str | None = None) -> list[Row]:
        if task_id is None:
            return self.query("SELECT * FROM model_calls WHERE run_id = ? ORDER BY id", (run_id,))
        return self.query(
            "SELECT * FROM model_calls WHERE run_id = ? AND task_id = ? ORDER BY id",
            (run_id, task_id),
        )

    def add_step(self, **fields: Any) -> int:
        return self._insert("steps", {"ts": iso(utcnow()), **fields})

    def steps(self, run_id: str, task_id: str) -> list[Row]:
        return self.query(
            "SELECT * FROM steps WHERE run_id = ? AND task_id = ? ORDER BY id", (run_id, task_id)
        )

    def record_event(self, event: Event) -> None:
        """Subscriber for the event bus: the run record is one of the listeners."""
        self._insert(
            "events",
            {
                "run_id": event.run_id,
                "task_id": event.task_id,
                "kind": event.kind,
                "data_json": _json(dict(event.data)),
                "ts": iso(event.ts),
            },
        )

    def events(self, run_id: str) -> list[Row]:
        return self.query("SELECT * FROM events WHERE run_id = ? ORDER BY id", (run_id,))

    def add_gate_result(self, run_id: str, **fields: Any) -> int:
        return self._insert("gate_results", {"run_id": run_id, "ts": iso(utcnow()), **fields})

    def gate_results(self, run_id: str) -> list[Row]:
        return self.query("SELECT * FROM gate_results WHERE run_id = ? ORDER BY id", (run_id,))

    # -- what a run waits for ----------------------------------------------------------------

    def add_pending(self, run_id: str, kind: str, detail: Mapping[str, Any],
                    task_id: str | None = None) -> int:  # fmt: skip
        return self._insert(
            "pending",
            {"run_id": run_id, "task_id": task_id, "kind": kind,
             "detail_json": _json(dict(detail)), "since": iso(utcnow())},
        )  # fmt: skip

    def pending(self, run_id: str, *, open_only: bool = False) -> list[Row]:
        """What the run waits for (`open_only`: not decided yet), oldest first."""
        cond = " AND decision IS NULL" if open_only else ""
        return self.query(
            f"SELECT * FROM pending WHERE run_id = ?{cond} ORDER BY id",  # noqa: S608
            (run_id,),
        )

    def waiting_runs(self, repo: Path) -> list[Row]:
        """Runs of `repo` that wait for a human, oldest first."""
        return self.query(
            "SELECT * FROM runs WHERE repo = ? AND status IN ('needs_approval', 'escalated')"
            " ORDER BY created_at",
            (str(repo),),
        )

    def decide_pending(self, pending_id: int, decision: str, by: str, note: str) -> bool:
        """Decide an open record; False if it was decided already (by another process)."""
        with self.transaction() as db:
            cur = db.execute(
                "UPDATE pending SET decision = ?, decided_by = ?, decided_at = ?, note = ?"
                " WHERE id = ? AND decision IS NULL",
                (decision, by, iso(utcnow()), note, pending_id),
            )
            return cur.rowcount == 1

    # -- retention -------------------------------------------------------------------------

    def runs_before(self, created_before: str, limit: int | None = None) -> list[Row]:
        """Runs created before an ISO time, oldest first (`limit`: at most that many)."""
        return self.query(
            "SELECT id, status, created_at, finished_at, pid, report_path, branch FROM runs"
            " WHERE created_at < ? ORDER BY created_at LIMIT ?",
            (created_before, -1 if limit is None else limit),
        )

    def run_rows(self, run_id: str) -> dict[str, list[Row]]:
        """Every row a run owns, table by table (`karma runs export`)."""
        key = {"runs": "id"}
        return {
            table: self.query(
                f"SELECT * FROM {table} WHERE {key.get(table, 'run_id')} = ?"  # noqa: S608
                " ORDER BY rowid",
                (run_id,),
            )
            for table in reversed(RUN_TABLES)
        }

    def delete_runs(self, run_ids: Sequence[str]) -> int:
        """Remove the runs and every row they own in one transaction; the rows removed."""
        removed = 0
        with self._raw_transaction() as db:
            for run_id in run_ids:
                for table in RUN_TABLES:
                    column = "id" if table == "runs" else "run_id"
                    cur = db.execute(f"DELETE FROM {table} WHERE {column} = ?", (run_id,))  # noqa: S608
                    removed += max(cur.rowcount, 0)
        return removed

    def vacuum(self) -> None:
        """Give the freed pages back to the file system (and empty the WAL)."""
        with self._lock:
            self._db.execute("VACUUM")
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def size_bytes(self) -> int:
        return sum(
            p.stat().st_size for p in self.path.parent.glob(self.path.name + "*") if p.is_file()
        )

    # -- what KARMA learns -----------------------------------------------------------------

    def add_outcome(self, **fields: Any) -> int:
        return self._insert("remediation_outcomes", {"ts": iso(utcnow()), **fields})

    def outcomes(self, pattern_id: str | None = None) -> list[Row]:
        if pattern_id is None:
            return self.query("SELECT * FROM remediation_outcomes ORDER BY id")
        return self.query(
            "SELECT * FROM remediation_outcomes WHERE pattern_id = ? ORDER BY id", (pattern_id,)
        )

    def note_failure(self, signature: str, failure_class: str, example: str, **fields: Any) -> None:
        now = iso(utcnow())
        with self.transaction() as db:
            seen = db.execute(
                "SELECT count FROM failures WHERE signature = ?", (signature,)
            ).fetchone()
            if seen:
                db.execute(
                    "UPDATE failures SET count = count + 1, last_seen = ? WHERE signature = ?",
                    (now, signature),
                )
                return
        self._insert(
            "failures",
            {
                "signature": signature,
                "failure_class": failure_class,
                "example": example,
                "first_seen": now,
                "last_seen": now,
                "count": 1,
                **fields,
            },
        )

    def set_failure_hint(self, signature: str, hint: str) -> None:
        """The prevention hint recalled for this failure from now on (a human's answer)."""
        self._update("failures", {"signature": signature}, {"hint": hint})

    def failures(self) -> list[Row]:
        return self.query("SELECT * FROM failures ORDER BY last_seen DESC")

    def task_history(self) -> list[Row]:
        """Finished tasks of every run: estimates, actual tokens, tier and first-attempt outcome."""
        return self.query(
            """
            SELECT t.kind, t.tier, t.estimated_tokens, t.tokens_in + t.tokens_out AS actual,
                   t.status, t.attempts,
                   (SELECT a.status FROM attempts a WHERE a.run_id = t.run_id
                      AND a.task_id = t.id AND a.number = 1) AS first_status,
                   (SELECT a.tier FROM attempts a WHERE a.run_id = t.run_id
                      AND a.task_id = t.id AND a.number = 1) AS first_tier
            FROM tasks t WHERE t.finished_at IS NOT NULL
            """
        )
