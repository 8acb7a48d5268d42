"""Scheduler efficiency on random DAGs (issue 4).

For random DAGs of 100 and 1,000 tasks with heavy-tailed durations (Pareto, alpha 1.5)
and P = 4 and 16 slots, runs the real scheduler (`karma.scheduler.run_dag` on a thread
pool, tasks that sleep their duration) and prints makespan ÷ max(critical path, total
work ÷ P), beside a level-by-level baseline (each generation waits for the previous one)
measured in the same run. Target: mean ratio ≤ 1.05.

    python bench/bench_scheduler.py [--dags 3] [--unit-ms 4]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import networkx as nx

from karma.scheduler import Outcome, remaining_path, run_dag


def random_dag(n: int, rng: random.Random) -> nx.DiGraph:
    graph = nx.DiGraph()
    graph.add_nodes_from(range(n))
    for node in range(1, n):
        for _ in range(rng.choice((0, 1, 1, 2, 3))):
            graph.add_edge(rng.randrange(max(0, node - 50), node), node)
    return graph


def lower_bound(graph: nx.DiGraph, durations: dict[int, float], slots: int) -> float:
    critical = max(remaining_path(graph, durations).values())
    return max(critical, sum(durations.values()) / slots)


def run_karma(graph: nx.DiGraph, durations: dict[int, float], slots: int) -> float:
    def work(task: int) -> Outcome:
        time.sleep(durations[task])
        return Outcome("succeeded")

    started = time.perf_counter()
    run_dag(graph, work, jobs=slots, weight=durations)
    return time.perf_counter() - started


def run_levels(graph: nx.DiGraph, durations: dict[int, float], slots: int) -> float:
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=slots) as pool:
        for generation in nx.topological_generations(graph):
            list(pool.map(lambda t: time.sleep(durations[t]), generation))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dags", type=int, default=3)
    parser.add_argument("--unit-ms", type=float, default=4.0, help="mean task duration")
    args = parser.parse_args()
    rng = random.Random(7)
    print(f"{'tasks':>6} {'P':>3} {'karma ratio':>12} {'levels ratio':>13}")
    means = []
    for n in (100, 1000):
        for slots in (4, 16):
            ours, levels = [], []
            for _ in range(args.dags):
                graph = random_dag(n, rng)
                unit = args.unit_ms / 1000 * (100 / n) ** 0.5 * 4
                durations = {t: min(unit * rng.paretovariate(1.5) / 3, unit * 40) for t in graph}
                bound = lower_bound(graph, durations, slots)
                ours.append(run_karma(graph, durations, slots) / bound)
                levels.append(run_levels(graph, durations, slots) / bound)
            means.append(statistics.mean(ours))
            print(
                f"{n:>6} {slots:>3} {statistics.mean(ours):>12.3f} {statistics.mean(levels):>13.3f}"
            )
    mean = statistics.mean(means)
    verdict = "PASS" if mean <= 1.05 else "MISS"
    print(f"mean makespan ratio {mean:.3f} (target <= 1.05): {verdict}")


if __name__ == "__main__":
    main()
