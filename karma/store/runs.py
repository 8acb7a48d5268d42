"""The record of runs: runs, tasks, attempts, the exchange (model calls, steps, events,
gate results), what a run waits for, and retention. A run's rows are read back typed
(`karma.store.rows`); an export's rows stay plain dicts, as the file holds them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from karma.errors import StoreError
from karma.events import Event, iso, utcnow
from karma.ids import RunId, TaskId
from karma.store.db import Database, Row, _json
from karma.store.rows import (
    AttemptRow,
    EventRow,
    GateResultRow,
    ModelCallRow,
    PendingRow,
    RunRow,
    StepRow,
    TaskRow,
)
from karma.store.schema import RUN_TABLES


class RunRecords(Database):
    # -- runs and tasks -------------------------------------------------------------

    def create_run(self, run_id: RunId, request: str, repo: Path, **fields: Any) -> None:
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

    def update_run(self, run_id: RunId, **fields: Any) -> None:
        self._update("runs", {"id": run_id}, fields)

    def run(self, run_id: RunId) -> RunRow | None:
        rows = self.typed(RunRow, "SELECT * FROM runs WHERE id = ?", (run_id,))
        return rows[0] if rows else None

    def run_ids_starting(self, prefix: str) -> list[RunId]:
        """The ids of the runs that start with `prefix`, newest first."""
        like = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        rows = self.query(
            "SELECT id FROM runs WHERE id LIKE ? ESCAPE '\\' ORDER BY created_at DESC",
            (f"{like}%",),
        )
        return [RunId(str(row["id"])) for row in rows]

    def runs(self, limit: int = 50) -> list[RunRow]:
        return self.typed(RunRow, "SELECT * FROM runs ORDER BY created_at DESC LIMIT ?", (limit,))

    def stopped_runs(self, repo: Path) -> list[RunRow]:
        """Runs of `repo` that ended before their end, newest first: interrupted, Docker
        lost, or still `running` (killed, unless its `pid` lives: the caller checks)."""
        return self.typed(
            RunRow,
            "SELECT * FROM runs WHERE repo = ? AND plan_json IS NOT NULL AND status IN "
            "('interrupted', 'infrastructure', 'running') ORDER BY created_at DESC, rowid DESC",
            (str(repo),),
        )

    def upsert_task(self, run_id: RunId, task_id: TaskId, **fields: Any) -> None:
        if self.query("SELECT 1 FROM tasks WHERE run_id = ? AND id = ?", (run_id, task_id)):
            self._update("tasks", {"run_id": run_id, "id": task_id}, fields)
        else:
            self._insert("tasks", {"run_id": run_id, "id": task_id, **fields})

    def tasks(self, run_id: RunId) -> list[TaskRow]:
        return self.typed(TaskRow, "SELECT * FROM tasks WHERE run_id = ? ORDER BY rowid", (run_id,))

    def add_attempt(self, run_id: RunId, task_id: TaskId, number: int, **fields: Any) -> int:
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
        self, run_id: RunId, task_id: TaskId, number: int, **fields: Any
    ) -> None:
        self._update("attempts", {"run_id": run_id, "task_id": task_id, "number": number}, fields)

    def last_attempt(self, run_id: RunId, task_id: TaskId) -> int:
        """The number of the task's latest attempt; 0 before its first."""
        rows = self.query(
            "SELECT MAX(number) AS n FROM attempts WHERE run_id = ? AND task_id = ?",
            (run_id, task_id),
        )
        return int(rows[0]["n"] or 0)

    def done_summary(self, run_id: RunId, task_id: TaskId) -> str | None:
        """The summary of the task's succeeded attempt, None when none succeeded."""
        rows = self.query(
            "SELECT summary FROM attempts WHERE run_id = ? AND task_id = ? AND status = "
            "'succeeded' ORDER BY id DESC LIMIT 1",
            (run_id, task_id),
        )
        return str(rows[0]["summary"] or "") if rows else None

    def charge(self, run_id: RunId, task_id: TaskId, *, tokens_in: int, tokens_out: int,
               cost_usd: float) -> None:  # fmt: skip
        """Add one model call's usage to its task and its run, in one transaction."""
        with self.transaction() as db:
            db.execute(
                "UPDATE tasks SET tokens_in = tokens_in + ?, tokens_out = tokens_out + ?, "
                "cost_usd = cost_usd + ? WHERE run_id = ? AND id = ?",
                (tokens_in, tokens_out, cost_usd, run_id, task_id),
            )
            db.execute("UPDATE runs SET cost_usd = cost_usd + ? WHERE id = ?", (cost_usd, run_id))

    def attempts(self, run_id: RunId, task_id: TaskId | None = None) -> list[AttemptRow]:
        if task_id is None:
            return self.typed(
                AttemptRow, "SELECT * FROM attempts WHERE run_id = ? ORDER BY id", (run_id,)
            )
        return self.typed(
            AttemptRow,
            "SELECT * FROM attempts WHERE run_id = ? AND task_id = ? ORDER BY id",
            (run_id, task_id),
        )

    # -- the exchange record ------------------------------------------------------------

    def add_model_call(self, **fields: Any) -> int:
        return self._insert("model_calls", {"ts": iso(utcnow()), **fields})

    def model_calls(self, run_id: RunId, task_id: TaskId | None = None) -> list[ModelCallRow]:
        if task_id is None:
            return self.typed(
                ModelCallRow, "SELECT * FROM model_calls WHERE run_id = ? ORDER BY id", (run_id,)
            )
        return self.typed(
            ModelCallRow,
            "SELECT * FROM model_calls WHERE run_id = ? AND task_id = ? ORDER BY id",
            (run_id, task_id),
        )

    def next_call_seq(
        self, run_id: RunId | None, task_id: TaskId | None, attempt: int | None
    ) -> int:
        """The `seq` of the next model call of (run, task, attempt)."""
        rows = self.query(
            "SELECT MAX(seq) AS top FROM model_calls WHERE run_id IS ? AND task_id IS ?"
            " AND attempt IS ?",
            (run_id, task_id, attempt),
        )
        top = rows[0]["top"] if rows else None
        return 0 if top is None else int(top) + 1

    def add_step(self, **fields: Any) -> int:
        return self._insert("steps", {"ts": iso(utcnow()), **fields})

    def steps(self, run_id: RunId, task_id: TaskId) -> list[StepRow]:
        return self.typed(
            StepRow,
            "SELECT * FROM steps WHERE run_id = ? AND task_id = ? ORDER BY id",
            (run_id, task_id),
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

    def events(self, run_id: RunId) -> list[EventRow]:
        return self.typed(EventRow, "SELECT * FROM events WHERE run_id = ? ORDER BY id", (run_id,))

    def add_gate_result(self, run_id: RunId, **fields: Any) -> int:
        return self._insert("gate_results", {"run_id": run_id, "ts": iso(utcnow()), **fields})

    def last_gate_seconds(self, name: str) -> float | None:
        """How long the gate `name` took the last time it ran and passed or failed."""
        rows = self.query(
            "SELECT duration_s FROM gate_results WHERE name = ? AND status IN ('passed', "
            "'failed') ORDER BY id DESC LIMIT 1",
            (name,),
        )
        return float(rows[0]["duration_s"]) if rows else None

    def gate_results(self, run_id: RunId) -> list[GateResultRow]:
        return self.typed(
            GateResultRow, "SELECT * FROM gate_results WHERE run_id = ? ORDER BY id", (run_id,)
        )

    # -- what a run waits for ----------------------------------------------------------------

    def add_pending(self, run_id: RunId, kind: str, detail: Mapping[str, Any],
                    task_id: TaskId | None = None) -> int:  # fmt: skip
        return self._insert(
            "pending",
            {"run_id": run_id, "task_id": task_id, "kind": kind,
             "detail_json": _json(dict(detail)), "since": iso(utcnow())},
        )  # fmt: skip

    def pending(self, run_id: RunId, *, open_only: bool = False) -> list[PendingRow]:
        """What the run waits for (`open_only`: not decided yet), oldest first."""
        cond = " AND decision IS NULL" if open_only else ""
        return self.typed(
            PendingRow,
            f"SELECT * FROM pending WHERE run_id = ?{cond} ORDER BY id",  # noqa: S608
            (run_id,),
        )

    def waiting_runs(self, repo: Path) -> list[RunRow]:
        """Runs of `repo` that wait for a human, oldest first."""
        return self.typed(
            RunRow,
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

    def runs_before(self, created_before: str, limit: int | None = None) -> list[RunRow]:
        """Runs created before an ISO time, oldest first (`limit`: at most that many)."""
        return self.typed(
            RunRow,
            "SELECT * FROM runs WHERE created_at < ? ORDER BY created_at LIMIT ?",
            (created_before, -1 if limit is None else limit),
        )

    def run_rows(self, run_id: RunId) -> dict[str, list[Row]]:
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

    def import_run(self, run_id: RunId, tables: Mapping[str, Sequence[Mapping[str, Any]]]) -> int:
        """Add an exported run's rows (`karma runs import`) in one transaction; the rows
        added. Only a run's own tables and their known columns, every row owned by
        `run_id`; row ids are this store's own. A run already here is refused."""
        if self.run(run_id) is not None:
            raise StoreError(f"run {run_id} is already in {self.path}")
        if unknown := set(tables) - set(RUN_TABLES):
            raise StoreError(f"not a run's table(s): {', '.join(sorted(unknown))}")
        added = 0
        with self.transaction() as db:
            for table in reversed(RUN_TABLES):  # the run first, its dependents after
                owner = "id" if table == "runs" else "run_id"
                for row in tables.get(table, ()):
                    keep_id = table in ("runs", "tasks")  # their ids are names, not row numbers
                    fields = {k: v for k, v in row.items() if k != "id" or keep_id}
                    self._checked(table, fields)
                    if fields.get(owner) != run_id:
                        raise StoreError(f"a {table} row of another run than {run_id}")
                    names, marks = ", ".join(fields), ", ".join("?" for _ in fields)
                    db.execute(
                        f"INSERT INTO {table} ({names}) VALUES ({marks})",  # noqa: S608
                        tuple(fields.values()),
                    )
                    added += 1
        return added

    def delete_runs(self, run_ids: Sequence[RunId]) -> int:
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
