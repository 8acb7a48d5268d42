"""How a build ended: its status, its exit code, and the `karma build --json` contract."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from karma.errors import ExitCode
from karma.ids import RunId, TaskId
from karma.pipeline.build import Build
from karma.store import AttemptRow, TaskRow

BuildStatus = Literal[
    "succeeded", "failed", "escalated", "needs_approval", "interrupted", "budget_exceeded",
    "infrastructure",
]  # fmt: skip
"""How a build ended; `infrastructure` (Docker lost) is reported as `interrupted`."""

STATUS_EXIT: dict[BuildStatus, ExitCode] = {
    "succeeded": ExitCode.OK,
    "failed": ExitCode.FAILED,
    "escalated": ExitCode.FAILED,
    "needs_approval": ExitCode.FAILED,
    "interrupted": ExitCode.INTERRUPTED,
    "budget_exceeded": ExitCode.BUDGET,
    "infrastructure": ExitCode.ENVIRONMENT,
}


@dataclass(frozen=True)
class BuildResult:
    run_id: RunId
    status: BuildStatus
    branch: str
    base_commit: str
    head_commit: str
    cost_usd: float
    tasks: list[TaskResult]
    gates: list[dict[str, Any]] = field(default_factory=list)
    report: str | None = None
    reason: str = ""

    @property
    def exit_code(self) -> ExitCode:
        return STATUS_EXIT[self.status]

    def to_json(self) -> dict[str, Any]:
        """The `karma build --json` contract (README, "Build JSON")."""
        status = "interrupted" if self.status == "infrastructure" else self.status
        return {
            "run_id": self.run_id,
            "status": status,
            "branch": self.branch,
            "base_commit": self.base_commit,
            "head_commit": self.head_commit,
            "cost_usd": round(self.cost_usd, 6),
            "tasks": [t.to_json() for t in self.tasks],
            "gates": self.gates,
            "report": self.report,
        }


@dataclass(frozen=True)
class AttemptResult:
    """One attempt in a task's `history`: how it ended, its failure class and remedy."""

    attempt: int
    status: str
    model: str | None
    failure_class: str | None
    pattern: str | None
    remediation: str | None
    worker: str | None

    @classmethod
    def of(cls, a: AttemptRow) -> AttemptResult:
        return cls(a.number, a.status, a.model, a.failure_class, a.pattern_id, a.remediation,
                   a.worker)  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        return {
            "attempt": self.attempt,
            "status": self.status,
            "model": self.model,
            "class": self.failure_class,
            "pattern": self.pattern,
            "remediation": self.remediation,
            "worker": self.worker,
        }


@dataclass(frozen=True)
class TaskResult:
    """One task of a build's result: its record row, the stack it ran on, its attempts."""

    row: TaskRow
    stack: str
    history: tuple[AttemptResult, ...]
    folder: str = "."
    """Where its stack is placed in the repository ("." the root)."""

    @property
    def id(self) -> TaskId:
        return self.row.id

    @property
    def status(self) -> str:
        return self.row.status

    def to_json(self) -> dict[str, Any]:
        """One entry of the build JSON's `tasks`."""
        t = self.row
        return {
            "id": t.id,
            "status": t.status,
            "attempts": t.attempts,
            "model": t.model,
            "tier": t.tier,
            "tokens_in": t.tokens_in,
            "tokens_out": t.tokens_out,
            "cost_usd": round(t.cost_usd, 6),
            "started_at": t.started_at,
            "finished_at": t.finished_at,
            "sandbox": {"image": t.image, "container_id": t.container_id},
            "worker": t.worker,
            "docker_host": t.docker_host,
            "stack": self.stack,
            "folder": self.folder,
            "commit": t.commit_sha,
            "history": [a.to_json() for a in self.history],
        }


def task_results(b: Build) -> list[TaskResult]:
    """The build's tasks as recorded, in plan order, each with its attempts."""
    attempts: dict[str, list[AttemptResult]] = {}
    for a in b.store.attempts(b.run_id):
        attempts.setdefault(a.task_id, []).append(AttemptResult.of(a))
    rows = []
    for t in b.store.tasks(b.run_id):
        placed = b.placed(t.id)
        rows.append(TaskResult(t, placed.stack.name, tuple(attempts.get(t.id, ())), placed.label))
    return rows


def write_report(b: Build) -> str | None:
    try:
        from karma.report import write_run_report
    except ImportError:
        return None
    reports = b.workspace.root / ".karma" / "reports"
    return str(write_run_report(b.store, b.run_id, reports, repo=b.workspace.root))
