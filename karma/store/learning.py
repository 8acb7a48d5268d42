"""What KARMA learns, kept across runs: failures seen, remediation outcomes, task history."""

from __future__ import annotations

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
