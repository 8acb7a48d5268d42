"""The Healer: classify a failed attempt, decide what to do next, learn from the outcome.

`decide` applies the retry budget, the rule against repeating the same remediation on
the same signature, the run-wide loop guard, and the policy cascade: the learner ranks
a pattern's remediations; one whose tier needs more confidence than the classification
has gives way to the next safer one; one that needs approval, or a critical one, goes
to a human with its proposal. The engine applies the `Remedy`; it never decides.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Sequence

from karma.config import HealConfig, KarmaConfig
from karma.heal.attempts import AttemptRecord, Decision, Escalation
from karma.heal.escalation import EscalationReport, TaskLike, escalation_report
from karma.heal.evidence import Evidence
from karma.heal.learning import Learner, RemedyOutcome, recall
from karma.heal.patterns import Classification, PatternTable
from karma.heal.remediation import (
    TIER_ORDER,
    RiskTier,
    build_remedy,
    policy_for,
    tier_of,
)  # fmt: skip
from karma.models.interface import ModelClient
from karma.recipes import FailurePattern, RemediationName, RemediationSpec
from karma.store import Store

MAX_FILES = 200


FLAKY_RERUN = 0.5
"""Flakiness at which the rerun remedy is tried first (see karma.heal.flaky)."""


class Healer:
    def __init__(
        self,
        store: Store | None,
        config: KarmaConfig | HealConfig,
        patterns: Sequence[FailurePattern] | PatternTable,
        *,
        run_id: str | None = None,
        max_retries: int | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if isinstance(config, KarmaConfig):
            self.config = config.heal
            self.max_retries = config.build.max_retries if max_retries is None else max_retries
        else:
            self.config = config
            self.max_retries = 3 if max_retries is None else max_retries
        self.table = (
            patterns if isinstance(patterns, PatternTable) else PatternTable(list(patterns))
        )
        self.store = store
        self.run_id = run_id
        self.learner = Learner(store, self.config.chooser, rng)
        self._applied: Counter[tuple[str, str]] = Counter()

    # -- diagnosis -------------------------------------------------------------------

    def classify(self, evidence: Evidence) -> Classification:
        return self.table.classify(evidence)

    def pattern(self, classification: Classification) -> FailurePattern:
        return self.table.by_id.get(classification.pattern_id, self.table.fallback)

    def observe(
        self,
        evidence: Evidence,
        classification: Classification,
        *,
        files: Sequence[str] = (),
        kind: str | None = None,
    ) -> None:
        """Remember the failure (its signature, an example, the files and task kind)."""
        if self.store is None:
            return
        pattern = self.pattern(classification)
        example = "\n".join(classification.key_lines) or evidence.output_tail[-2000:]
        self.store.note_failure(
            classification.signature, classification.failure_class, example[:4000],
            pattern_id=classification.pattern_id, files_json=json.dumps(sorted(set(files))),
            kind=kind, hint=pattern.prevention or pattern.hint,
        )  # fmt: skip
        # note_failure only counts a signature seen before; recall needs every file and the
        # latest task kind it was seen on, so merge them here.
        seen = set(self.store.failure_files(classification.signature))
        merged = sorted(seen | set(files))[-MAX_FILES:]
        self.store.set_failure_files(classification.signature, merged, kind)

    def recall(self, files: Sequence[str], kind: str | None) -> list[str]:
        """Prevention hints for a first attempt on these files or this kind of task."""
        return recall(self.store, list(files), kind, self.config.recall_limit)

    # -- decision ----------------------------------------------------------------------

    def decide(
        self,
        task_id: str,
        classification: Classification,
        history: Sequence[AttemptRecord],
        *,
        unavailable: frozenset[RemediationName] = frozenset(),
    ) -> Decision:
        """What to do about `classification`; `history` is the task's earlier failed attempts.
        The remediations in `unavailable` cannot work in this build's sandboxes: not offered."""
        del task_id  # decisions depend on the task's history, passed in; kept for the record
        if len(history) >= self.max_retries:
            return Escalation(
                "retries_exhausted", f"{len(history) + 1} attempts failed; the retry budget "
                f"is {self.max_retries}",
            )  # fmt: skip
        pattern = self.pattern(classification)
        ranked = self.learner.rank(pattern)
        last = history[-1] if history else None
        guarded = False
        usable: list[RemediationSpec] = []
        for spec in ranked:
            if spec.name in unavailable:
                continue
            if (
                last
                and last.remediation == spec.name
                and (last.classification.signature == classification.signature)
            ):
                continue
            if self._applied[(classification.signature, spec.name)] >= self.config.loop_guard:
                guarded = True
                continue
            if self._cooling(tier_of(spec.name), history):
                continue
            usable.append(spec)
        automatic = [s for s in usable if tier_of(s.name) != "critical"]
        if classification.flakiness >= FLAKY_RERUN:
            # The log suggests a flaky test: a rerun is the experiment that tells (its
            # verdict is recorded as the outcome the learner uses), so it goes first.
            automatic.sort(key=lambda s: s.name != "rerun_failed_tests")
        critical = [s for s in usable if tier_of(s.name) == "critical"]
        if automatic:
            choice = self._cascade(automatic, classification.confidence)
            if isinstance(choice, Escalation):
                return choice
            policy = policy_for(self.config, tier_of(choice.name))
            if policy.approval:
                return Escalation(
                    "needs_approval", f"{choice.name} ({tier_of(choice.name)} tier) needs "
                    "approval by configuration", choice.name, choice.proposal or pattern.hint,
                )  # fmt: skip
            self._applied[(classification.signature, choice.name)] += 1
            return build_remedy(choice.name, pattern, _diagnosis(classification), self.config)
        if critical:
            spec = critical[0]
            return Escalation(
                "needs_approval", f"the remaining remediation, {spec.name}, is critical "
                "and never automatic", spec.name, spec.proposal or pattern.hint,
            )  # fmt: skip
        if guarded:
            return Escalation("loop_guard", "every remediation of this failure was already "
                              f"applied {self.config.loop_guard} times in this run")  # fmt: skip
        return Escalation("no_remediation", f"no remediation of {pattern.id} is left to try")

    def _cascade(
        self, ranked: list[RemediationSpec], confidence: float
    ) -> RemediationSpec | Escalation:
        """The best-ranked remediation whose tier the confidence allows, else a safer one."""
        first = ranked[0]
        if confidence >= policy_for(self.config, tier_of(first.name)).min_confidence:
            return first
        ceiling = TIER_ORDER.index(tier_of(first.name))
        for spec in ranked[1:]:
            tier = tier_of(spec.name)
            allowed = confidence >= policy_for(self.config, tier).min_confidence
            if TIER_ORDER.index(tier) < ceiling and allowed:
                return spec
        return Escalation(
            "low_confidence", f"classification confidence {confidence:.2f} is below what "
            f"{first.name} ({tier_of(first.name)} tier) needs, and no safer remediation is left",
            first.name,
        )  # fmt: skip

    def _cooling(self, tier: RiskTier, history: Sequence[AttemptRecord]) -> bool:
        cooldown = policy_for(self.config, tier).cooldown
        recent = [a.remediation for a in history[-cooldown:]] if cooldown else []
        return any(name is not None and tier_of(name) == tier for name in recent)

    # -- learning ----------------------------------------------------------------------

    def record_outcome(
        self,
        classification: Classification,
        remediation: RemediationName,
        outcome: RemedyOutcome,
        *,
        task_id: str | None = None,
        run_id: str | None = None,
        seconds: float = 0.0,
        side_effects: str | None = None,
    ) -> None:
        """How a remediation turned out; the chooser learns from it at once."""
        self.learner.record(
            self.pattern(classification), remediation, outcome,
            signature=classification.signature, run_id=run_id or self.run_id, task_id=task_id,
            seconds=seconds, side_effects=side_effects,
        )  # fmt: skip

    # -- escalation --------------------------------------------------------------------

    def escalation_report(
        self,
        task: TaskLike,
        attempts: Sequence[AttemptRecord],
        model: ModelClient | None = None,
        *,
        reason: Escalation | None = None,
    ) -> EscalationReport:
        """The report a human gets; the fix is drafted by `model` when one is given."""
        return escalation_report(
            task, attempts, self.table.by_id, self.table.fallback, reason=reason, model=model
        )


def _diagnosis(classification: Classification) -> str:
    lines = "; ".join(classification.key_lines[:3])
    return f"{classification.failure_class} ({classification.pattern_id}): {lines}"[:1500]
