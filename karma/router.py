"""The router: which tier (and so which model) runs each task, and why.

Estimates are calibrated per task kind from the store: the ratio of actual to estimated
tokens over past finished tasks of that kind (sum over sum, so large tasks weigh more),
used once `MIN_CALIBRATION_SAMPLES` exist and clamped to `CALIBRATION_CLAMP` so one
runaway task cannot wreck every forecast. The calibrated estimate picks the tier by the
thresholds in `[router]`; then the store's first-attempt success rate of each tier for
the kind adjusts it: a tier proven for the kind (rate >= `learn_threshold` over
>= `learn_min_attempts` first attempts) keeps that kind's tasks up to `STRETCH` times its
threshold; a tier failing the kind (rate below the threshold) sends them one tier up.
Every decision carries a sentence saying why; a retry may `escalate` one tier.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from karma.config import TIERS, KarmaConfig, Tier
from karma.ids import TaskId
from karma.plan import Plan, Task
from karma.routed import Routing

MIN_CALIBRATION_SAMPLES = 3
CALIBRATION_CLAMP = (0.25, 4.0)
STRETCH = 1.5
"""How far past its threshold a proven tier keeps smaller tasks of a kind."""
SUCCESS = frozenset({"succeeded"})
"""Attempt statuses that count as a first-attempt success."""


@dataclass(frozen=True)
class Calibration:
    factor: float
    samples: int

    def apply(self, estimate: int) -> int:
        return max(1, round(estimate * self.factor))


@dataclass(frozen=True)
class TierRecord:
    """First attempts of one kind on one tier."""

    attempts: int
    successes: int

    @property
    def rate(self) -> float:
        return self.successes / self.attempts if self.attempts else 0.0


def _int(value: Any) -> int:
    return int(value) if isinstance(value, int | float) else 0


class Router:
    def __init__(self, config: KarmaConfig, history: Sequence[Mapping[str, Any]] = ()) -> None:
        self.config = config
        sums: dict[str, list[int]] = {}
        records: dict[tuple[str, str], list[int]] = {}
        for row in history:
            kind = str(row.get("kind"))
            estimated, actual = _int(row.get("estimated_tokens")), _int(row.get("actual"))
            if estimated > 0 and actual > 0:
                total = sums.setdefault(kind, [0, 0, 0])
                total[0] += actual
                total[1] += estimated
                total[2] += 1
            first_tier = row.get("first_tier") or row.get("tier")
            if row.get("first_status") is not None and first_tier in TIERS:
                record = records.setdefault((kind, str(first_tier)), [0, 0])
                record[0] += 1
                record[1] += row["first_status"] in SUCCESS
        low, high = CALIBRATION_CLAMP
        self._calibration = {
            kind: Calibration(min(high, max(low, actual / estimated)), n)
            for kind, (actual, estimated, n) in sums.items()
            if n >= MIN_CALIBRATION_SAMPLES
        }
        self._records = {key: TierRecord(n, ok) for key, (n, ok) in records.items()}

    @property
    def has_history(self) -> bool:
        return bool(self._calibration)

    def calibration(self, kind: str) -> Calibration:
        return self._calibration.get(kind, Calibration(1.0, 0))

    def record(self, kind: str, tier: Tier) -> TierRecord:
        return self._records.get((kind, tier), TierRecord(0, 0))

    def _ceiling(self, tier: Tier) -> int | None:
        limits = self.config.router
        return {"small": limits.small_max_tokens, "medium": limits.medium_max_tokens}.get(tier)

    def _verdict(self, kind: str, tier: Tier) -> bool | None:
        """True: proven for the kind; False: failing it; None: not enough history."""
        record = self.record(kind, tier)
        if record.attempts < self.config.router.learn_min_attempts:
            return None
        return record.rate >= self.config.router.learn_threshold

    def _describe(self, kind: str, tier: Tier) -> str:
        record = self.record(kind, tier)
        return (
            f"{tier} first-attempt success for {kind} is {record.rate:.2f} over "
            f"{record.attempts} (threshold {self.config.router.learn_threshold:.2f})"
        )

    def route(self, task: Task) -> Routing:
        calibration = self.calibration(task.kind)
        tokens = calibration.apply(task.estimated_tokens)
        reasons = [
            f"calibrated {tokens} tokens = estimate {task.estimated_tokens} x "
            f"{calibration.factor:.2f} from {calibration.samples} past {task.kind} tasks"
            if calibration.samples
            else f"estimate {tokens} tokens (no {task.kind} history to calibrate)"
        ]
        tier: Tier = next((t for t in TIERS[:-1] if tokens < (self._ceiling(t) or 0)), TIERS[-1])
        reasons.append(f"{tier} by the thresholds")
        below = TIERS.index(tier) - 1
        if below >= 0:
            lower = TIERS[below]
            ceiling = self._ceiling(lower) or 0
            if tokens < ceiling * STRETCH and self._verdict(task.kind, lower):
                tier = lower
                reasons.append(
                    f"kept on {lower}: {self._describe(task.kind, lower)} and the task is "
                    f"under {STRETCH:g}x its threshold"
                )
        while tier != TIERS[-1] and self._verdict(task.kind, tier) is False:
            reasons.append(f"moved up: {self._describe(task.kind, tier)}")
            tier = TIERS[TIERS.index(tier) + 1]
        return Routing(tokens, tier, self.config.models.for_tier(tier), "; ".join(reasons))

    def route_plan(self, plan: Plan) -> dict[TaskId, Routing]:
        return {task.id: self.route(task) for task in plan.tasks}

    def escalate(self, tier: Tier) -> Tier | None:
        """The next tier up for a retry, or None at the top."""
        index = TIERS.index(tier)
        return TIERS[index + 1] if index + 1 < len(TIERS) else None
