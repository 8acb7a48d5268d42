"""How a task's attempts differ: the treatment the healer's remedies prescribe, and how
an attempt ended.

A `Treatment` starts from the task's routing and accumulates each remedy: a stronger
tier, more memory or time, hints for the prompt, or a `Recheck` that continues the
failed attempt's change without the model (its failed tests rerun, or quarantined).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from karma.config import TIERS, Tier
from karma.heal import Classification, Evidence, Remedy

AttemptStatus = Literal["succeeded", "failed", "conflict", "infra", "interrupted"]
"""How an attempt ended, as its record keeps it: `infra` is the environment's failure
(Docker or a worker lost), never the task's."""


@dataclass(frozen=True)
class Recheck:
    branch: str
    """The failed attempt's branch, which the next worktree continues."""
    output: str
    """Its failing output, where the failed tests are named."""
    quarantine: bool = False


@dataclass(frozen=True)
class Treatment:
    """How the next attempt runs, as the healer's remedies have shaped it."""

    tier: Tier
    memory_factor: float = 1.0
    timeout_factor: float = 1.0
    hints: tuple[str, ...] = ()
    remedy: Remedy | None = None
    recheck: Recheck | None = None

    def after(self, remedy: Remedy, branch: str | None, evidence: Evidence | None) -> Treatment:
        """The treatment of the attempt after one that failed and got `remedy`."""
        tier = self.tier
        if remedy.escalate_model and TIERS.index(tier) + 1 < len(TIERS):
            tier = TIERS[TIERS.index(tier) + 1]
        recheck = None
        if (remedy.rerun_failed_tests or remedy.quarantine_flaky_test) and branch and evidence:
            recheck = Recheck(branch, evidence.output_tail, remedy.quarantine_flaky_test)
        return replace(
            self,
            tier=tier,
            hints=(*self.hints, remedy.hint),
            remedy=remedy,
            memory_factor=self.memory_factor * remedy.memory_factor,
            timeout_factor=self.timeout_factor * remedy.timeout_factor,
            recheck=recheck,
        )


@dataclass(frozen=True)
class AttemptEnd:
    status: AttemptStatus
    evidence: Evidence | None = None
    classification: Classification | None = None
    commit: str | None = None
    detail: str = ""
    branch: str | None = None
    remedy_failed: bool = False
    """The remedy's own step failed (before the agent): the failure it treated stands."""
