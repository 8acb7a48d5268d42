"""What KARMA learns, kept across runs: failures seen, remediation outcomes, task history."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from karma.events import iso, utcnow
from karma.store.db import Database, Row


class LearningRecords(Database):
    # -- what KARMA learns -----------------------------------------------------------------

    def add_outcome(self, **fields: Any) -> int:
        return self._insert("remediation_outcomes", {"ts": iso(utcnow()), **fields})

    def outcomes(self, pattern_id: str | None = None) -> list[Row]:
        if pattern_id is None:
            return self.query("SELECT * FROM remediation_outcomes ORDER BY id")
        return self.query(
            "SELECT * FROM remediation_outcomes WHERE pattern_id = ? ORDER BY id", (pattern_id,)
        )

    def outcomes_of(self, run_id: str, task_id: str | None) -> list[Row]:
        """The remediation outcomes one task's attempts produced, in order."""
        return self.query(
            "SELECT * FROM remediation_outcomes WHERE run_id = ? AND task_id = ? ORDER BY id",
            (run_id, task_id),
        )

    def failures_starting(self, prefix: str) -> list[Row]:
        """The failures whose signature starts with `prefix`."""
        like = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return self.query("SELECT * FROM failures WHERE signature LIKE ? ESCAPE '\\'",
                          (like + "%",))  # fmt: skip

    def outcomes_for(self, signature: str) -> list[Row]:
        return self.query(
            "SELECT * FROM remediation_outcomes WHERE signature = ? ORDER BY id", (signature,)
        )

    def failure_files(self, signature: str) -> list[str]:
        rows = self.query("SELECT files_json FROM failures WHERE signature = ?", (signature,))
        return list(json.loads(rows[0]["files_json"] or "[]")) if rows else []

    def set_failure_files(self, signature: str, files: Sequence[str], kind: str | None) -> None:
        """The files a failure was seen on, and the latest task kind (kept when None)."""
        with self.transaction() as db:
            db.execute(
                "UPDATE failures SET files_json = ?, kind = COALESCE(?, kind) WHERE signature = ?",
                (json.dumps(list(files)), kind, signature),
            )

    def first_attempt_trend(self, runs: int, success: Iterable[str]) -> list[Row]:
        """Per run (the last `runs`, newest first): its first attempts, and how many of
        them ended in one of `success`."""
        ok = sorted(success)
        return self.query(
            """
            SELECT r.id, r.created_at,
                   SUM(CASE WHEN a.status IN ({}) THEN 1 ELSE 0 END) AS first_ok, COUNT(a.id) AS n
            FROM runs r JOIN attempts a ON a.run_id = r.id AND a.number = 1
            GROUP BY r.id ORDER BY r.created_at DESC LIMIT ?
            """.format(",".join("?" for _ in ok)),  # noqa: S608 (placeholders only)
            (*ok, runs),
        )

    def merge_memory(self, failures: Iterable[Mapping[str, Any]],
                     outcomes: Iterable[Mapping[str, Any]]) -> dict[str, int]:  # fmt: skip
        """Another store's memory merged in: a failure seen on both adds its count, an
        outcome already here is not added twice. How many rows were added."""
        added = {"failures": 0, "outcomes": 0}
        with self.transaction() as db:
            for f in failures:
                self._checked("failures", f)
                seen = db.execute("SELECT count FROM failures WHERE signature = ?",
                                  (f["signature"],))  # fmt: skip
                if seen.fetchone():
                    db.execute(
                        "UPDATE failures SET count = count + ?, last_seen = MAX(last_seen, ?) "
                        "WHERE signature = ?", (f["count"], f["last_seen"], f["signature"]),
                    )  # fmt: skip
                    continue
                db.execute(
                    f"INSERT INTO failures ({', '.join(f)}) VALUES ({', '.join('?' * len(f))})",  # noqa: S608 (names checked)
                    tuple(f.values()),
                )
                added["failures"] += 1
            for o in outcomes:
                self._checked("remediation_outcomes", o)
                where = " AND ".join(f"{k} IS ?" for k in o)
                if db.execute(f"SELECT 1 FROM remediation_outcomes WHERE {where}",  # noqa: S608
                              tuple(o.values())).fetchone():  # fmt: skip
                    continue
                db.execute(
                    f"INSERT INTO remediation_outcomes ({', '.join(o)}) "  # noqa: S608
                    f"VALUES ({', '.join('?' * len(o))})",
                    tuple(o.values()),
                )
                added["outcomes"] += 1
        return added

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

    def spec(self, key: str) -> Row | None:
        """The nightly record of the spec `key`: its last status, run and cost."""
        rows = self.query("SELECT * FROM specs WHERE key = ?", (key,))
        return rows[0] if rows else None

    def record_spec(self, key: str, **fields: Any) -> None:
        """A nightly spec's outcome (file, status, run_id, cost_usd, reason, ts), replacing
        the one before."""
        self._insert("specs", {"key": key, **fields}, replace=True)

    def first_attempts(self, since: str, *, before: bool = False) -> list[str]:
        """The statuses of the finished first attempts of the runs made since `since`
        (`before`: of the runs made before it)."""
        op = "<" if before else ">="
        rows = self.query(
            "SELECT a.status FROM attempts a JOIN runs r ON r.id = a.run_id "  # noqa: S608 (op is ours)
            f"WHERE a.number = 1 AND a.finished_at IS NOT NULL AND r.created_at {op} ?",
            (since,),
        )
        return [str(r["status"]) for r in rows]

    def outcomes_since(self, since: str, *, before: bool = False) -> list[str]:
        """The remediation outcomes recorded since `since` (`before`: before it)."""
        op = "<" if before else ">="
        rows = self.query(f"SELECT outcome FROM remediation_outcomes WHERE ts {op} ?", (since,))  # noqa: S608
        return [str(r["outcome"]) for r in rows]

    def failures_since(self, since: str) -> list[Row]:
        """The failure signatures first seen since `since`, oldest first."""
        return self.query(
            "SELECT * FROM failures WHERE first_seen >= ? ORDER BY first_seen", (since,)
        )

    def spec_files(self) -> dict[str, str]:
        """run id -> the nightly spec file that run built."""
        rows = self.query("SELECT run_id, file FROM specs WHERE run_id IS NOT NULL")
        return {str(r["run_id"]): str(r["file"]) for r in rows}

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
