"""Heal and learn: a failed attempt is diagnosed, treated, and learned from.

evidence (what ran and how it ended) -> signature (the normalised error lines, hashed)
-> patterns (the recipe table; classify) -> healer (decide: a remediation or an
escalation, under the retry budget, loop guard and policy cascade) -> remediation (the
risk tiers and what each remediation does) -> learning (outcomes, the chooser, recall)
-> escalation (the report a human gets) and reflect (new patterns from recurring
unknown failures).
"""

from __future__ import annotations

from karma.heal.attempts import AttemptRecord, Decision, Escalation, EscalationReason
from karma.heal.escalation import EscalationReport
from karma.heal.evidence import Evidence, clean_output
from karma.heal.healer import Healer
from karma.heal.learning import RemedyOutcome
from karma.heal.patterns import Classification, PatternTable, RunnerUp
from karma.heal.remediation import Remedy, RiskTier

__all__ = [
    "AttemptRecord",
    "Classification",
    "Decision",
    "Escalation",
    "EscalationReason",
    "EscalationReport",
    "Evidence",
    "Healer",
    "PatternTable",
    "Remedy",
    "RemedyOutcome",
    "RiskTier",
    "RunnerUp",
    "clean_output",
]  # fmt: skip
