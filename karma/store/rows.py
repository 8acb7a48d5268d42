"""The run record's rows as typed values: one frozen dataclass per table a run owns, one
field per column of the schema (after every migration).

A row is built from SQLite in one place, `from_row`, which fails loudly when the query
and the dataclass disagree on a column (a migration added one, a query selected fewer).
`as_dict` is for the edges only: `--json` outputs and exported runs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from karma.errors import StoreError
from karma.ids import RunId, TaskId

_NAMES: dict[type, dict[str, None]] = {}


def _names(row_type: type[_Row]) -> dict[str, None]:
    """A row type's fields, in order (a dict, so that `keys()` compares as a set)."""
    if row_type not in _NAMES:
        _NAMES[row_type] = dict.fromkeys(f.name for f in dataclasses.fields(row_type))
    return _NAMES[row_type]


@dataclass(frozen=True)
class _Row:
    """What every row type shares: built from one SQLite row, given back as a dict."""

    TABLE: ClassVar[str]

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Self:
        names = _names(cls)
        if row.keys() != names.keys():
            missing = [n for n in names if n not in row]
            if missing:
                raise StoreError(f"a {cls.TABLE} row without column(s): {', '.join(missing)}")
            extra = sorted(set(row) - set(names))
            raise StoreError(f"a {cls.TABLE} row with unknown column(s): {', '.join(extra)}")
        return cls(**row)

    def as_dict(self) -> dict[str, Any]:
        """The row as its table's columns (`--json`, exports)."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class RunRow(_Row):
    TABLE: ClassVar[str] = "runs"
    id: RunId
    request: str
    repo: str
    status: str
    branch: str | None
    base_commit: str | None
    head_commit: str | None
    created_at: str
    finished_at: str | None
    cost_usd: float
    plan_json: str | None
    config_json: str | None
    report_path: str | None
    reason: str | None
    pid: int | None
    source: str | None


@dataclass(frozen=True)
class TaskRow(_Row):
    TABLE: ClassVar[str] = "tasks"
    run_id: RunId
    id: TaskId
    title: str
    kind: str
    status: str
    tier: str | None
    model: str | None
    estimated_tokens: int | None
    calibrated_tokens: int | None
    attempts: int
    tokens_in: int
    tokens_out: int
    cost_usd: float
    started_at: str | None
    finished_at: str | None
    commit_sha: str | None
    image: str | None
    container_id: str | None
    reason: str | None
    routing_json: str | None
    files_json: str | None
    worker: str | None
    docker_host: str | None


@dataclass(frozen=True)
class AttemptRow(_Row):
    TABLE: ClassVar[str] = "attempts"
    id: int
    run_id: RunId
    task_id: TaskId
    number: int
    model: str | None
    tier: str | None
    status: str
    started_at: str
    finished_at: str | None
    failure_class: str | None
    pattern_id: str | None
    signature: str | None
    remediation: str | None
    evidence_json: str | None
    summary: str | None
    tokens_in: int
    tokens_out: int
    cost_usd: float
    container_id: str | None
    branch: str | None
    worker: str | None
    docker_host: str | None


@dataclass(frozen=True)
class ModelCallRow(_Row):
    TABLE: ClassVar[str] = "model_calls"
    id: int
    run_id: RunId | None
    task_id: TaskId | None
    attempt: int | None
    seq: int
    purpose: str
    model: str
    request_hash: str
    request_json: str
    reply_json: str | None
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    cost_usd: float
    latency_ms: float
    error: str | None
    ts: str


@dataclass(frozen=True)
class StepRow(_Row):
    TABLE: ClassVar[str] = "steps"
    id: int
    run_id: RunId
    task_id: TaskId
    attempt: int
    step: int
    tool: str
    arguments_json: str
    output: str
    is_error: int
    ts: str


@dataclass(frozen=True)
class EventRow(_Row):
    TABLE: ClassVar[str] = "events"
    id: int
    run_id: RunId
    task_id: TaskId | None
    kind: str
    data_json: str
    ts: str


@dataclass(frozen=True)
class GateResultRow(_Row):
    TABLE: ClassVar[str] = "gate_results"
    id: int
    run_id: RunId
    name: str
    status: str
    blocking: int
    duration_s: float
    findings_json: str
    ts: str


@dataclass(frozen=True)
class PendingRow(_Row):
    TABLE: ClassVar[str] = "pending"
    id: int
    run_id: RunId
    task_id: TaskId | None
    kind: str
    detail_json: str
    since: str
    decision: str | None
    decided_by: str | None
    decided_at: str | None
    note: str | None


ROW_TYPES: tuple[type[_Row], ...] = (
    RunRow, TaskRow, AttemptRow, ModelCallRow, StepRow, EventRow, GateResultRow, PendingRow
)  # fmt: skip
"""The typed tables; a test holds each to its table's columns in the migrated schema."""
