"""What KARMA learns: outcomes per (pattern, remediation), the chooser, and recall.

Each remediation's outcome is recorded in the store and kept in memory as a Beta
posterior over its success rate, starting from the recipe's prior. The chooser ranks a
pattern's remediations by a Thompson sample (or a UCB bound, or the recipe's order), so
the table converges on what works in this repository. Recall turns failures seen before
on the same files or the same kind of task into prevention hints for a first attempt.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass
from typing import Literal

from karma.recipes import FailurePattern, RemediationSpec
from karma.store import Store

RemedyOutcome = Literal["resolved", "partial", "failed", "escalated"]
"""What a remedy led to (not `karma.scheduler.Outcome`, a task's end)."""
OUTCOMES: tuple[RemedyOutcome, ...] = ("resolved", "partial", "failed", "escalated")
REWARD: dict[str, float] = {"resolved": 1.0, "partial": 0.5, "failed": 0.0, "escalated": 0.0}
Chooser = Literal["thompson", "ucb", "ordered"]


@dataclass
class Arm:
    """Observed outcomes of one (pattern, remediation)."""

    tries: int = 0
    reward: float = 0.0

    def posterior(self, spec: RemediationSpec) -> tuple[float, float]:
        alpha = 1.0 + spec.prior * spec.weight + self.reward
        beta = 1.0 + (1.0 - spec.prior) * spec.weight + (self.tries - self.reward)
        return alpha, beta


class Learner:
    """The outcome table (in the store and in memory) and the chooser over it."""

    def __init__(
        self, store: Store | None, chooser: Chooser = "thompson", rng: random.Random | None = None
    ) -> None:
        self.store = store
        self.chooser = chooser
        self.rng = rng or random.Random()  # noqa: S311 - exploration, not security
        self._arms: dict[tuple[str, str], Arm] | None = None

    @property
    def arms(self) -> dict[tuple[str, str], Arm]:
        if self._arms is None:
            self._arms = {}
            for row in self.store.outcomes() if self.store is not None else []:
                self._add(row["pattern_id"], row["remediation"], row["outcome"])
        return self._arms

    def _add(self, pattern_id: str, remediation: str, outcome: str) -> None:
        arm = self.arms.setdefault((pattern_id, remediation), Arm())
        arm.tries += 1
        arm.reward += REWARD.get(outcome, 0.0)

    def record(
        self,
        pattern: FailurePattern,
        remediation: str,
        outcome: RemedyOutcome,
        *,
        signature: str | None = None,
        run_id: str | None = None,
        task_id: str | None = None,
        seconds: float = 0.0,
        side_effects: str | None = None,
    ) -> None:
        self._add(pattern.id, remediation, outcome)
        if self.store is not None:
            self.store.add_outcome(
                run_id=run_id, task_id=task_id, pattern_id=pattern.id,
                failure_class=pattern.klass, signature=signature, remediation=remediation,
                outcome=outcome, seconds=seconds, side_effects=side_effects,
            )  # fmt: skip

    def rank(self, pattern: FailurePattern) -> list[RemediationSpec]:
        """The pattern's remediations, most promising first."""
        specs = list(pattern.remediations)
        if self.chooser == "ordered":
            return specs
        arms = [self.arms.get((pattern.id, spec.name), Arm()) for spec in specs]
        if self.chooser == "thompson":
            scores = [
                self.rng.betavariate(*arm.posterior(spec))
                for spec, arm in zip(specs, arms, strict=True)
            ]
        else:
            total = sum(arm.tries for arm in arms) + 1
            scores = []
            for spec, arm in zip(specs, arms, strict=True):
                alpha, beta = arm.posterior(spec)
                n = alpha + beta - 2
                scores.append(alpha / (alpha + beta) + math.sqrt(2 * math.log(total + 1) / (n + 1)))
        order = sorted(range(len(specs)), key=lambda i: (-scores[i], i))
        return [specs[i] for i in order]


def recall(store: Store | None, files: list[str], kind: str | None, limit: int = 5) -> list[str]:
    """Prevention hints of failures seen before on these files or this kind of task."""
    if store is None or limit <= 0:
        return []
    wanted = set(files)
    hits: list[tuple[int, str]] = []
    for row in store.failures():
        hint = row.get("hint")
        if not hint:
            continue
        seen_files = set(json.loads(row.get("files_json") or "[]"))
        if (wanted & seen_files) or (kind is not None and row.get("kind") == kind):
            hits.append((int(row["count"]), str(hint)))
    hits.sort(key=lambda item: -item[0])
    return list(dict.fromkeys(hint for _, hint in hits))[:limit]
