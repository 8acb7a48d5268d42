"""Routing and calibration, learned from a real run store with seeded history."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from karma.config import KarmaConfig
from karma.plan import Plan, TaskId, parse_plan
from karma.router import Router
from karma.store import Store

CONFIG = KarmaConfig()


def plan_of(*tasks: dict[str, Any]) -> Plan:
    return parse_plan({"tasks": list(tasks)}, request="r")


def one(tid: str, tokens: int, kind: str = "code") -> dict[str, Any]:
    return {"id": tid, "title": tid, "estimated_tokens": tokens, "kind": kind}


def seed(store: Store, run: str, rows: list[tuple[str, str, int, int, str]]) -> None:
    """rows: (kind, first tier, estimated, actual, first attempt status)."""
    store.create_run(run, "seed", Path("/repo"))
    for i, (kind, tier, estimated, actual, status) in enumerate(rows):
        tid = f"t{i}"
        store.upsert_task(
            run, tid, title=tid, kind=kind, status="succeeded", tier=tier,
            estimated_tokens=estimated, tokens_in=actual * 4 // 5,
            tokens_out=actual - actual * 4 // 5, attempts=1, finished_at="2026-11-01T00:00:00Z",
        )  # fmt: skip
        store.add_attempt(run, tid, 1, tier=tier, status=status)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    db = Store(tmp_path / "karma.db")
    yield db
    db.close()


def test_without_history_the_estimate_and_the_thresholds_decide() -> None:
    router = Router(CONFIG)
    routes = router.route_plan(plan_of(one("s", 7_999), one("m", 8_000), one("l", 40_000)))
    assert [routes[TaskId(t)].tier for t in ("s", "m", "l")] == ["small", "medium", "large"]
    assert routes[TaskId("m")].model == CONFIG.models.medium
    assert routes[TaskId("s")].calibrated_tokens == 7_999
    assert routes[TaskId("s")].reason == (
        "estimate 7999 tokens (no code history to calibrate); small by the thresholds"
    )
    assert not router.has_history


def test_calibration_is_the_ratio_of_sums_per_kind(store: Store) -> None:
    seed(store, "r1", [("code", "medium", 10_000, 15_000, "succeeded")] * 2
         + [("code", "medium", 20_000, 30_000, "succeeded")]
         + [("docs", "small", 1_000, 500, "succeeded")] * 3)  # fmt: skip
    router = Router(CONFIG, store.task_history())
    assert router.calibration("code").factor == pytest.approx(1.5)
    assert router.calibration("code").samples == 3
    assert router.calibration("docs").factor == pytest.approx(0.5)
    route = router.route(plan_of(one("api", 6_000)).tasks[0])
    assert route.calibrated_tokens == 9_000
    assert route.tier == "medium"  # 6,000 estimated is small; 9,000 calibrated is not
    assert route.reason.startswith("calibrated 9000 tokens = estimate 6000 x 1.50 from 3 past code")


def test_calibration_needs_three_samples_and_is_clamped(store: Store) -> None:
    seed(store, "r1", [("code", "small", 1_000, 50_000, "failed")] * 3
         + [("test", "small", 1_000, 2_000, "succeeded")] * 2)  # fmt: skip
    router = Router(CONFIG, store.task_history())
    assert router.calibration("code").factor == 4.0
    assert router.calibration("test").factor == 1.0
    assert router.calibration("test").samples == 0


def test_a_tier_failing_a_kind_sends_its_tasks_up(store: Store) -> None:
    rows = [("code", "small", 5_000, 5_000, "failed")] * 6
    rows += [("code", "small", 5_000, 5_000, "succeeded")] * 6
    seed(store, "r1", rows)
    route = Router(CONFIG, store.task_history()).route(plan_of(one("api", 3_000)).tasks[0])
    assert route.tier == "medium"
    assert "moved up: small first-attempt success for code is 0.50 over 12" in route.reason


def test_a_proven_tier_keeps_smaller_tasks_of_its_kind(store: Store) -> None:
    rows = [("docs", "small", 5_000, 5_000, "succeeded")] * 10
    seed(store, "r1", rows)
    router = Router(CONFIG, store.task_history())
    kept = router.route(plan_of(one("readme", 10_000, "docs")).tasks[0])
    assert kept.tier == "small"
    assert "kept on small: small first-attempt success for docs is 1.00 over 10" in kept.reason
    # Past 1.5x the small threshold the task is not "smaller" any more.
    big = router.route(plan_of(one("manual", 13_000, "docs")).tasks[0])
    assert big.tier == "medium"
    # Another kind has no such record.
    assert router.route(plan_of(one("api", 10_000)).tasks[0]).tier == "medium"


def test_too_few_attempts_teach_nothing(store: Store) -> None:
    seed(store, "r1", [("code", "small", 5_000, 5_000, "failed")] * 9)
    route = Router(CONFIG, store.task_history()).route(plan_of(one("api", 3_000)).tasks[0])
    assert route.tier == "small"


def test_escalation_goes_one_tier_up_and_stops_at_the_top() -> None:
    router = Router(CONFIG)
    assert router.escalate("small") == "medium"
    assert router.escalate("medium") == "large"
    assert router.escalate("large") is None


def test_thresholds_come_from_config() -> None:
    config = KarmaConfig.model_validate({"router": {"small_max_tokens": 1_000}})
    assert Router(config).route(plan_of(one("a", 2_000)).tasks[0]).tier == "medium"
