"""The gate seam: what a gate is given (`GateContext`), what it returns (`GateResult`).

A gate checks a tree against a base commit and never raises for a problem it found:
findings and statuses are values. It raises a `GateError` only when it could not run
at all; the suite turns that into an `error` result with the reason, so one broken
gate never hides the others.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from karma.errors import GateError
from karma.home import DataRoots

if TYPE_CHECKING:
    from karma.config import KarmaConfig
    from karma.layout import StackLayout
    from karma.models.interface import ModelClient
    from karma.recipes import Stack
    from karma.sandbox.interface import Sandbox, SandboxSpec

Status = Literal["passed", "failed", "warning", "error", "skipped"]
Severity = Literal["error", "warning", "note", "blocker", "major", "minor"]

BLOCKING_SEVERITIES: frozenset[str] = frozenset({"error", "blocker", "major"})


@dataclass(frozen=True)
class Finding:
    rule: str
    """A stable id (`karma.python.eval-input`, `secrets.aws-access-key`, `PYSEC-2018-28`)."""
    severity: Severity
    path: str
    """Repository-relative, with forward slashes; "" when the finding has no file."""
    line: int
    message: str
    new: bool = True
    """False for a finding that the base already had (reported, never blocking)."""

    def as_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "severity": self.severity,
            "path": self.path,
            "line": self.line,
            "message": self.message,
        }


@dataclass(frozen=True)
class GateResult:
    name: str
    status: Status
    findings: tuple[Finding, ...] = ()
    duration_s: float = 0.0
    summary: str = ""
    """One line: what the gate did, or why it could not."""
    artifacts: Mapping[str, Path] = field(default_factory=dict)
    """Files the gate wrote (SARIF, JUnit XML, pip-audit JSON), by kind."""
    data: Mapping[str, Any] = field(default_factory=dict)
    """Gate-specific values (test counts, the review verdict, bench timings)."""


@dataclass(frozen=True)
class GateSettings:
    """One gate's entry in a suite, after the project's overrides."""

    name: str
    blocking: bool = True
    timeout_s: float = 300.0
    options: Mapping[str, Any] = field(default_factory=dict)

    def get(self, key: str, default: Any = None) -> Any:
        return self.options.get(key, default)


@dataclass(frozen=True)
class GateContext:
    """Everything a gate may read; gates never write to `repo`."""

    repo: Path
    """The tree under check (the working tree, or an export of the build's head)."""
    base: str
    """The base commit sha."""
    config: KarmaConfig
    head: str | None = None
    """The head commit sha; None means the working tree as it is."""
    stack: Stack | None = None
    start_sandbox: Callable[[SandboxSpec], Sandbox] | None = None
    """Starts a sandbox for the tests and bench gates; None runs them on the host."""
    sandbox_image: str | None = None
    reviewer: ModelClient | None = None
    """The reviewer model; None builds it from `config.models.reviewer` when needed."""
    request: str = ""
    plan: str = ""
    previous: tuple[GateResult, ...] = ()
    """Results of the gates that ran before this one in the suite."""
    run_id: str = "gate"
    workdir: Path | None = None
    """Scratch folder for artifacts; the suite makes a temporary one when None."""
    data: DataRoots = field(default_factory=DataRoots.trusted)
    """Where rules and the rubric come from: trusted places only, never `repo`."""
    git_dir: Path | None = None
    """The main repository's git directory, read before any sandbox ran: every gate's git
    runs on it, never on a `.git` found in `repo`. None: discovered from `repo` (only
    for the user's own working tree)."""
    layout: StackLayout | None = None
    """The stacks the base commit places (karma/layout.py); None: `stack` at the root."""
    folder: str = "."
    """The folder of `stack` (a per-stack gate's run in a mixed repository): its test
    command is read from there at the base, and runs there."""

    def at_folder(self, name: str) -> str:
        """The repository path of `name` in this run's stack folder."""
        return name if self.folder in ("", ".") else f"{self.folder}/{name}"

    def owns(self, path: str) -> bool:
        """Whether a changed `path` is this run's stack's to judge (every path but those
        of the other stacks' folders, or all of them outside a mixed repository)."""
        if self.layout is None or not self.layout.mixed:
            return True
        owner = self.layout.owner(path) or self.layout.primary
        return owner.label == self.folder


class Gate(Protocol):
    name: str

    def run(self, ctx: GateContext, settings: GateSettings) -> GateResult: ...


class GateUnavailable(GateError):
    """A tool the gate needs is missing or failed (semgrep, pip-audit, git)."""


__all__ = [
    "BLOCKING_SEVERITIES",
    "Finding",
    "Gate",
    "GateContext",
    "GateError",
    "GateResult",
    "GateSettings",
    "GateUnavailable",
    "Severity",
    "Status",
]
