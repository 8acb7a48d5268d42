"""The run store: SQLite in WAL mode, written as things happen.

Runs, tasks, attempts, model calls, agent steps, events, gate results, and the healing
memory (failures seen and remediation outcomes). Every write is committed at once, so a
crash loses nothing already done; the store is the resume point, the debugger, the
source of replay and of what KARMA learns. The schema is versioned (`PRAGMA
user_version`) and migrated forward on open.

Reads of a run's own tables give typed rows (`karma.store.rows`: `RunRow`, `TaskRow`,
`AttemptRow`, ...); `Row`, a plain dict, is left for joins, counts and the healing memory.

Every value written is redacted on the way in (`karma.text.redact`): model requests and
replies, tool output, events, reasons, findings. Each write path (`_insert`, `_update`,
and the connection `transaction()` hands out) passes its parameters through `_clean`, so
no credential and no value of a host secret variable is ever in the file. Old runs are
removed by `prune` (`karma runs prune`, `store.retention_days`).
"""

from __future__ import annotations

from karma.ids import RunId, TaskId
from karma.store.db import Row, Writer
from karma.store.learning import LearningRecords
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
from karma.store.runs import RunRecords
from karma.store.schema import MIGRATIONS, RUN_TABLES

__all__ = [
    "MIGRATIONS",
    "RUN_TABLES",
    "AttemptRow",
    "EventRow",
    "GateResultRow",
    "ModelCallRow",
    "PendingRow",
    "Row",
    "RunId",
    "RunRow",
    "StepRow",
    "Store",
    "TaskId",
    "TaskRow",
    "Writer",
]


class Store(RunRecords, LearningRecords):
    """The run store: one SQLite connection shared by the engine's threads behind a lock."""
