"""The record of a task's failed attempts, and the two kinds of decision about the next.

A `Decision` is either a `Remedy` to apply (karma.heal.remediation) or an `Escalation`
to a human with the reason. Both the Healer and the escalation report read these.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from karma.heal.evidence import Evidence
from karma.heal.learning import RemedyOutcome
from karma.heal.patterns import Classification
from karma.heal.remediation import Remedy
from karma.recipes import RemediationName

EscalationReason = Literal[
    "retries_exhausted", "needs_approval", "loop_guard", "low_confidence", "no_remediation"
]


@dataclass(frozen=True)
class AttemptRecord:
    """One failed attempt of a task as healing sees it."""

    number: int
    evidence: Evidence
    classification: Classification
    remediation: RemediationName | None = None
    """The remediation applied after this attempt (None: none yet, or escalated)."""
    outcome: RemedyOutcome | None = None
    detail: str = ""
    """What the remediation itself did (e.g. 'rm -f poetry.lock && poetry lock: failed')."""


@dataclass(frozen=True)
class Escalation:
    """The task goes to a human, with why and, when there is one, the proposed change."""

    reason: EscalationReason
    detail: str
    remediation: RemediationName | None = None
    proposal: str | None = None


Decision = Remedy | Escalation
