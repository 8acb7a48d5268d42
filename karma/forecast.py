"""What a plan is expected to cost and take, and the budget that may refuse or stop it.

Assumptions, documented because every figure depends on them:

- A task's calibrated tokens split `INPUT_SHARE` input / the rest output: an agent loop
  re-reads its context each step, so input dominates. Prompt caching is not assumed, so
  the forecast errs high rather than low.
- Prices come from `recipes/prices.toml` (USD per million tokens); a model missing there
  is priced at 0 and named in the forecast's notes.
- A task takes `TASK_OVERHEAD_S` (sandbox, checks, merge) plus its tokens at
  `TOKENS_PER_SECOND` (total tokens through an agent loop, prefill included); the
  critical path's duration is the sum over its tasks, the heaviest chain by calibrated
  tokens.

`check_budget` refuses a plan forecast above the budget (exit 4). During a build the
`BudgetTracker` holds spent + committed cost and says whether another task may start.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

from karma.config import KarmaConfig
from karma.errors import BudgetExceeded
from karma.ids import TaskId
from karma.plan import Plan
from karma.recipes import PriceTable, load_prices
from karma.routed import RoutedPlan, Routing, critical_path
from karma.router import Router

INPUT_SHARE = 0.8
TOKENS_PER_SECOND = 200.0
TASK_OVERHEAD_S = 30.0


def task_cost(tokens: int, model: str, prices: PriceTable) -> float | None:
    """USD for `tokens` on `model`, or None when the model has no price."""
    price = prices.price(model)
    if price is None:
        return None
    per_token = INPUT_SHARE * price.input + (1 - INPUT_SHARE) * price.output
    return tokens * per_token / 1_000_000


def usd(amount: float) -> str:
    """Dollars to the cent, or to a hundredth of a cent below a dollar."""
    return f"${amount:.2f}" if amount >= 1 else f"${amount:.4f}"


def task_duration_s(tokens: int) -> float:
    return TASK_OVERHEAD_S + tokens / TOKENS_PER_SECOND


def forecast(plan: Plan, routing: Mapping[TaskId, Routing], prices: PriceTable) -> RoutedPlan:
    costs: dict[TaskId, float] = {}
    unpriced: set[str] = set()
    for task in plan.tasks:
        route = routing[task.id]
        cost = task_cost(route.calibrated_tokens, route.model, prices)
        if cost is None:
            unpriced.add(route.model)
        costs[task.id] = cost or 0.0
    path = critical_path(plan, {tid: route.calibrated_tokens for tid, route in routing.items()})
    duration = sum(task_duration_s(routing[tid].calibrated_tokens) for tid in path)
    notes = tuple(f"{model} is not in the price table; priced at 0" for model in sorted(unpriced))
    return RoutedPlan(plan, routing, costs, path, sum(costs.values()), duration, notes)


def check_budget(routed: RoutedPlan, max_cost_usd: float | None) -> None:
    """Refuse a plan whose forecast exceeds the budget (`BudgetExceeded`, exit 4)."""
    if max_cost_usd is not None and routed.estimated_cost_usd > max_cost_usd:
        raise BudgetExceeded(
            f"the plan is forecast at {usd(routed.estimated_cost_usd)}, over the budget of "
            f"{usd(max_cost_usd)}",
            tip="raise --max-cost (budget.max_cost_usd), or edit the plan "
            "(karma plan --out plan.json, then --plan-file plan.json)",
        )


class BudgetTracker:
    """Spent + committed cost of a build; thread-safe, shared by the scheduler's workers.

    A task is committed at its forecast cost when it starts and settled at its actual
    cost when it ends; new work starts only while spent + committed + its cost fits.
    """

    def __init__(self, max_cost_usd: float | None) -> None:
        self.max_cost_usd = max_cost_usd
        self._lock = threading.Lock()
        self._spent = 0.0
        self._committed: dict[str, float] = {}

    @property
    def spent(self) -> float:
        with self._lock:
            return self._spent

    @property
    def committed(self) -> float:
        with self._lock:
            return sum(self._committed.values())

    def can_start(self, task_cost: float) -> bool:
        with self._lock:
            return self._fits(task_cost)

    def _fits(self, task_cost: float) -> bool:
        if self.max_cost_usd is None:
            return True
        return self._spent + sum(self._committed.values()) + task_cost <= self.max_cost_usd

    def reserve(self, task_id: str, task_cost: float) -> bool:
        """Commit `task_cost` for `task_id` if it fits (check and commit in one step)."""
        with self._lock:
            if not self._fits(task_cost):
                return False
            self._committed[task_id] = self._committed.get(task_id, 0.0) + task_cost
            return True

    def spend(self, amount: float) -> None:
        """Cost incurred outside any reservation (the planner, the reviewer)."""
        with self._lock:
            self._spent += amount

    def settle(self, task_id: str, actual_cost: float) -> None:
        """The task ended: its commitment becomes what it really cost."""
        with self._lock:
            self._committed.pop(task_id, None)
            self._spent += actual_cost


def routed_plan(
    plan: Plan,
    config: KarmaConfig,
    history: Sequence[Mapping[str, Any]] = (),
    prices: PriceTable | None = None,
) -> RoutedPlan:
    """Route every task (learning from `history`, i.e. `Store.task_history()`) and forecast."""
    router = Router(config, history)
    return forecast(plan, router.route_plan(plan), prices or load_prices())
