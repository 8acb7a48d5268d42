"""Bench: validation and analysis of a 10,000-task random DAG (target: <= 1 s in all).

Prints each step (pydantic shape check, rule checks with the cycle check and generations,
critical path, merge-conflict check) and the total against the target, beside a baseline
measured in the same run: a pure-Python level-by-level (Kahn) pass over the same graph,
the least any analysis must do.

    .venv/bin/python bench/bench_plan.py [--tasks 10000] [--seed 7]
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable
from typing import Any, TypeVar

import networkx as nx

from karma.plan import PlanIn, PlanLimits, find_conflicts, parse_plan
from karma.routed import critical_path

T = TypeVar("T")
TARGET_S = 1.0


def random_dag(n: int, seed: int) -> dict[str, Any]:
    """Each task depends on up to 3 earlier tasks (mostly nearby) and declares 1-2 files."""
    rng = random.Random(seed)
    pool = [f"pkg{i % 50}/mod{i}.py" for i in range(n // 5)]
    tasks = []
    for i in range(n):
        deps = (
            sorted({f"t{rng.randrange(max(0, i - 200), i)}" for _ in range(rng.randint(0, 3))})
            if i
            else []
        )
        tasks.append({
            "id": f"t{i}", "title": f"Task {i}", "description": "Generated.", "deps": deps,
            "estimated_tokens": rng.randint(1_000, 60_000),
            "kind": rng.choice(["code", "test", "docs", "config", "migration"]),
            "files": rng.sample(pool, rng.randint(1, 2)),
        })  # fmt: skip
    return {"tasks": tasks}


def timed(fn: Callable[[], T]) -> tuple[T, float]:
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def kahn_levels(data: dict[str, Any]) -> list[list[str]]:
    dependents: dict[str, list[str]] = {t["id"]: [] for t in data["tasks"]}
    indegree = {t["id"]: len(t["deps"]) for t in data["tasks"]}
    for t in data["tasks"]:
        for dep in t["deps"]:
            dependents[dep].append(t["id"])
    level = [tid for tid, d in indegree.items() if d == 0]
    levels = []
    while level:
        levels.append(level)
        nxt = []
        for tid in level:
            for child in dependents[tid]:
                indegree[child] -= 1
                if indegree[child] == 0:
                    nxt.append(child)
        level = nxt
    return levels


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    data = random_dag(args.tasks, args.seed)
    limits = PlanLimits(max_tasks=args.tasks)
    edges = sum(len(t["deps"]) for t in data["tasks"])
    print(f"random DAG: {args.tasks} tasks, {edges} dependencies")

    levels, baseline = timed(lambda: kahn_levels(data))
    _, shape = timed(lambda: PlanIn.model_validate(data))
    plan, full = timed(lambda: parse_plan(data, request="bench", limits=limits))
    graph = plan.graph()
    _, cycle = timed(lambda: nx.is_directed_acyclic_graph(graph))
    _, generations = timed(lambda: list(nx.topological_generations(graph)))
    weights = {t.id: float(t.estimated_tokens) for t in plan.tasks}
    path, critical = timed(lambda: critical_path(plan, weights))
    conflicts, conflict_s = timed(lambda: find_conflicts(plan, limit=10**9))
    assert len(plan.generations) == len(levels)

    total = full + critical
    rows = [
        ("baseline: pure-Python Kahn levels", baseline),
        ("pydantic shape check (inside validation)", shape),
        ("cycle check, networkx (inside validation)", cycle),
        ("generations, networkx (inside validation)", generations),
        ("conflict check, all pairs (parse_plan stops at 1000)", conflict_s),
        ("validation + analysis: parse_plan", full),
        ("critical path", critical),
    ]
    for name, seconds in rows:
        print(f"  {name:<52} {seconds * 1000:8.1f} ms")
    worst = total + conflict_s
    for name, seconds in (
        ("TOTAL: parse_plan + critical path", total),
        ("TOTAL, plus the all-pairs conflict check", worst),
    ):
        verdict = "PASS" if seconds <= TARGET_S else "FAIL"
        print(
            f"  {name:<52} {seconds * 1000:8.1f} ms  target <= {TARGET_S * 1000:.0f} ms: "
            f"{verdict}; {seconds / baseline:.1f}x the baseline"
        )
    print(
        f"  {len(plan.generations)} generations, critical path of {len(path)} tasks, "
        f"{len(conflicts)} likely conflicts flagged"
    )


if __name__ == "__main__":
    main()
