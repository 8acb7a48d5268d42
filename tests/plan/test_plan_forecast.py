"""Cost forecast, critical-path duration, the budget check and the build's budget tracker."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from karma.config import KarmaConfig
from karma.errors import BudgetExceeded, ExitCode
from karma.forecast import BudgetTracker, check_budget, routed_plan, task_cost
from karma.plan import parse_plan
from karma.recipes import load_prices

SCRIPTED = KarmaConfig.model_validate(
    {"models": {"small": "scripted:small", "medium": "scripted:medium", "large": "scripted:large"}}
)


def one(tid: str, tokens: int, deps: list[str] | None = None) -> dict[str, Any]:
    return {"id": tid, "title": tid, "estimated_tokens": tokens, "kind": "code", "deps": deps or []}


def test_cost_splits_tokens_80_20_between_input_and_output() -> None:
    # scripted:medium: $3 in, $15 out per million.
    assert task_cost(1_000_000, "scripted:medium", load_prices()) == pytest.approx(5.4)
    assert task_cost(1_000, "nobody:nothing", load_prices()) is None


def test_forecast_totals_and_critical_path() -> None:
    plan = parse_plan(
        {"tasks": [one("a", 5_000), one("b", 20_000), one("c", 1_000, ["a", "b"]), one("d", 500)]},
        request="r",
    )
    routed = routed_plan(plan, SCRIPTED)
    assert routed.critical_path == ("b", "c")
    assert routed.costs["a"] == pytest.approx(5_000 * (0.8 * 1 + 0.2 * 5) / 1e6)
    assert routed.costs["b"] == pytest.approx(20_000 * 5.4 / 1e6)
    assert routed.estimated_cost_usd == pytest.approx(sum(routed.costs.values()))
    assert routed.duration_s == pytest.approx(30 + 20_000 / 200 + 30 + 1_000 / 200)
    contract = routed.contract()
    assert list(contract) == [
        "request",
        "tasks",
        "critical_path",
        "estimated_cost_usd",
        "generations",
    ]
    assert contract["generations"] == [["a", "b", "d"], ["c"]]


def test_an_unpriced_model_costs_zero_with_a_note() -> None:
    config = KarmaConfig.model_validate({"models": {"small": "openai:unknown-model"}})
    routed = routed_plan(parse_plan({"tasks": [one("a", 500)]}, request="r"), config)
    assert routed.estimated_cost_usd == 0
    assert routed.notes == ("openai:unknown-model is not in the price table; priced at 0",)


def test_a_forecast_over_budget_is_refused_with_exit_4() -> None:
    routed = routed_plan(parse_plan({"tasks": [one("a", 100_000)]}, request="r"), SCRIPTED)
    check_budget(routed, None)
    check_budget(routed, 10.0)
    with pytest.raises(BudgetExceeded) as caught:
        check_budget(routed, 0.1)
    assert caught.value.exit_code == ExitCode.BUDGET
    assert str(caught.value) == "the plan is forecast at $0.9000, over the budget of $0.1000"


def test_the_tracker_counts_spent_and_committed() -> None:
    tracker = BudgetTracker(1.0)
    assert tracker.reserve("a", 0.4)
    assert tracker.reserve("b", 0.4)
    assert not tracker.can_start(0.3)
    assert not tracker.reserve("c", 0.3)
    tracker.settle("a", 0.1)  # a cost less than forecast: room frees up
    assert tracker.spent == pytest.approx(0.1)
    assert tracker.committed == pytest.approx(0.4)
    assert tracker.reserve("c", 0.3)
    tracker.spend(0.3)
    assert not tracker.can_start(0.01)
    assert BudgetTracker(None).can_start(1e9)


def test_the_tracker_never_overcommits_under_threads() -> None:
    tracker = BudgetTracker(10.0)
    granted: list[bool] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        ok = tracker.reserve(f"t{n}", 1.0)
        with lock:
            granted.append(ok)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert granted.count(True) == 10
    assert tracker.committed == pytest.approx(10.0)
