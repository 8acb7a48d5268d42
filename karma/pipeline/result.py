"""How a build ended: its status, its exit code, and the `karma build --json` contract."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from karma.errors import ExitCode
from karma.pipeline.build import Build

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
    run_id: str
    status: BuildStatus
    branch: str
    base_commit: str
    head_commit: str
    cost_usd: float
    tasks: list[dict[str, Any]]
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
            "tasks": self.tasks,
            "gates": self.gates,
            "report": self.report,
        }


def task_rows(b: Build) -> list[dict[str, Any]]:
    """The `tasks` of the build JSON; `history` lists each attempt's class and remediation."""
    attempts: dict[str, list[dict[str, Any]]] = {}
    for a in b.store.attempts(b.run_id):
        attempts.setdefault(a["task_id"], []).append(
            {
                "attempt": a["number"],
                "status": a["status"],
                "model": a["model"],
                "class": a["failure_class"],
                "pattern": a["pattern_id"],
                "remediation": a["remediation"],
                "worker": a["worker"],
            }
        )
    rows = []
    for t in b.store.tasks(b.run_id):
        rows.append(
            {
                "id": t["id"],
                "status": t["status"],
                "attempts": t["attempts"],
                "model": t["model"],
                "tier": t["tier"],
                "tokens_in": t["tokens_in"],
                "tokens_out": t["tokens_out"],
                "cost_usd": round(t["cost_usd"], 6),
                "started_at": t["started_at"],
                "finished_at": t["finished_at"],
                "sandbox": {"image": t["image"], "container_id": t["container_id"]},
                "worker": t["worker"],
                "docker_host": t["docker_host"],
                "stack": b.stack.name,
                "commit": t["commit_sha"],
                "history": attempts.get(t["id"], []),
            }
        )
    return rows


def write_report(b: Build) -> str | None:
    try:
        from karma.report import write_run_report
    except ImportError:
        return None
    reports = b.workspace.root / ".karma" / "reports"
    return str(write_run_report(b.store, b.run_id, reports, repo=b.workspace.root))
