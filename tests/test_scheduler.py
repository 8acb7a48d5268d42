"""The scheduler: critical path first, failures skip dependents, independent work goes on."""

from __future__ import annotations

import threading
import time

import networkx as nx

from karma.scheduler import Outcome, SynchronousExecutor, remaining_path, run_dag


def dag(*edges: tuple[str, str], nodes: tuple[str, ...] = ()) -> nx.DiGraph:
    graph = nx.DiGraph()
    graph.add_nodes_from(nodes)
    graph.add_edges_from(edges)
    return graph


def test_critical_path_first_in_a_deterministic_order() -> None:
    graph = dag(("long1", "long2"), ("long2", "long3"), nodes=("short",))
    order: list[str] = []

    def run(task: str) -> Outcome:
        order.append(task)
        return Outcome("succeeded")

    results = run_dag(graph, run, jobs=1, weight={}, executor=SynchronousExecutor())
    assert order == ["long1", "long2", "long3", "short"]
    assert all(o.status == "succeeded" for o in results.values())


def test_failure_skips_dependents_with_a_reason_and_others_go_on() -> None:
    graph = dag(("a", "b"), ("b", "c"), ("x", "y"))
    skipped: list[str] = []
    results = run_dag(
        graph,
        lambda t: Outcome("failed", "boom") if t == "a" else Outcome("succeeded"),
        jobs=2,
        weight={},
        executor=SynchronousExecutor(),
        on_skip=lambda t, o: skipped.append(t),
    )
    assert results["a"].status == "failed"
    assert results["b"] == Outcome("skipped", "dependency a failed")
    assert results["c"].status == "skipped"
    assert results["x"].status == results["y"].status == "succeeded"
    assert sorted(skipped) == ["b", "c"]


def test_done_tasks_are_not_run_again() -> None:
    graph = dag(("a", "b"))
    ran: list[str] = []
    run_dag(
        graph,
        lambda t: ran.append(t) or Outcome("succeeded"),
        jobs=1,
        weight={},
        executor=SynchronousExecutor(),
        done=["a"],
    )
    assert ran == ["b"]


def test_budget_gate_holds_tasks_back() -> None:
    graph = dag(("a", "b"), nodes=("c",))
    results = run_dag(
        graph,
        lambda t: Outcome("succeeded"),
        jobs=1,
        weight={"c": 10},
        executor=SynchronousExecutor(),
        can_start=lambda t: "over budget" if t == "a" else None,
    )
    assert results["a"] == Outcome("not_started", "over budget")
    assert results["b"].status == "skipped"
    assert results["c"].status == "succeeded"


def test_parallel_tasks_overlap_on_a_thread_pool() -> None:
    graph = dag(nodes=("a", "b", "c", "d"))
    running = 0
    peak = 0
    lock = threading.Lock()

    def run(task: str) -> Outcome:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.05)
        with lock:
            running -= 1
        return Outcome("succeeded")

    run_dag(graph, run, jobs=4, weight={})
    assert peak == 4


def test_stop_means_no_new_work() -> None:
    graph = dag(("a", "b"))
    stop = threading.Event()

    def run(task: str) -> Outcome:
        stop.set()
        return Outcome("succeeded")

    results = run_dag(graph, run, jobs=1, weight={}, executor=SynchronousExecutor(), stop=stop)
    assert results["b"].status == "interrupted"


def test_remaining_path_weights() -> None:
    graph = dag(("a", "b"), ("a", "c"))
    assert remaining_path(graph, {"a": 1, "b": 5, "c": 2}) == {"a": 6, "b": 5, "c": 2}
