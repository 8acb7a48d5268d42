"""The run store's connection: one SQLite connection in WAL mode behind a lock, every
write redacted on its way in.

Each write path (`_insert`, `_update`, and the connection `transaction()` hands out)
passes its parameters through `_clean`, so no credential and no value of a host secret
variable is ever in the file. The record's own methods are in `runs.py` and
`learning.py`; this is the plumbing they share.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self, TypeVar

from karma.errors import StoreError
from karma.store.rows import _Row
from karma.store.schema import MIGRATIONS
from karma.text.redact import redact, redact_json, remember_host_secrets

Row = dict[str, Any]
"""A row of a query that is not one table's (a join, a count, the healing memory)."""

R = TypeVar("R", bound=_Row)

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


class Database:
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

    def typed(self, row_type: type[R], sql: str, params: Sequence[Any] = ()) -> list[R]:
        """The rows of a `SELECT *` of one table, as that table's row type."""
        return [row_type.from_row(row) for row in self.query(sql, params)]

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            self._db.close()
