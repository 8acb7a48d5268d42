"""The scheduler: critical path first, failures skip dependents, independent work goes on."""

from __future__ import annotations

import threading
import time

import networkx as nx
import pytest

from karma.errors import EnvironmentProblem, KarmaError, WorkspaceError
from karma.scheduler import (
    Lookahead,
    Outcome,
    SynchronousExecutor,
    ahead,
    remaining_path,
    run_dag,
)


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


def test_karmas_own_error_in_a_task_is_its_failure_and_others_go_on() -> None:
    def run(task: str) -> Outcome:
        if task == "a":
            raise WorkspaceError("refusing a nested repository at sub/")
        return Outcome("succeeded")

    results = run_dag(dag(("a", "b"), nodes=("x",)), run, jobs=2, weight={},
                      executor=SynchronousExecutor())  # fmt: skip
    assert results["a"] == Outcome("failed", "WorkspaceError: refusing a nested repository at sub/")
    assert results["b"].status == "skipped"
    assert results["x"].status == "succeeded"


def test_an_environment_problem_is_infrastructure_and_stops_and_drains_the_run() -> None:
    stop = threading.Event()
    interrupted: list[bool] = []
    started: list[str] = []

    def run(task: str) -> Outcome:
        started.append(task)
        if task == "lost":
            raise EnvironmentProblem("the Docker engine went away")
        if task == "slow":
            assert stop.wait(5), "the run was not stopped"
            return Outcome("interrupted", "stopped at its next step")
        return Outcome("succeeded")

    graph = dag(nodes=("lost", "slow", "later"))
    results = run_dag(graph, run, jobs=2, weight={"lost": 3, "slow": 2, "later": 1}, stop=stop,
                      on_interrupt=lambda: interrupted.append(True))  # fmt: skip
    lost = Outcome("infrastructure", "infrastructure failure: the Docker engine went away")
    assert results["lost"] == lost
    assert results["slow"].status == "interrupted"  # drained, not abandoned
    assert results["later"].status == "interrupted" and "later" not in started
    assert interrupted == [True]


def test_a_bug_in_a_task_is_raised_once_the_running_tasks_have_ended() -> None:
    stop = threading.Event()
    ended: list[str] = []

    def run(task: str) -> Outcome:
        if task == "bug":
            raise ZeroDivisionError("division by zero")
        stop.wait(5)
        ended.append(task)
        return Outcome("interrupted")

    with pytest.raises(ZeroDivisionError):
        run_dag(dag(nodes=("bug", "other")), run, jobs=2, weight={"bug": 2}, stop=stop)
    assert ended == ["other"] and stop.is_set()


def test_ahead_runs_in_the_background_and_its_result_is_waited_for() -> None:
    began = threading.Event()

    def background() -> str:
        began.set()
        return "ready"

    with ahead(background) as result:
        assert began.wait(5)  # it started before the block asked for it
        assert result() == "ready" and result() == "ready"


def test_ahead_raises_an_error_the_block_never_asked_for_once_it_has_ended() -> None:
    ended: list[str] = []

    def background() -> str:
        raise KarmaError("the engine is gone")

    with pytest.raises(KarmaError, match="engine is gone"), ahead(background):
        ended.append("block")
    assert ended == ["block"]


def test_ahead_lets_the_blocks_own_error_through_after_waiting_for_the_background() -> None:
    release = threading.Event()
    done: list[str] = []

    def background() -> None:
        release.wait(5)
        done.append("background")

    with pytest.raises(ValueError, match="the block's"), ahead(background):
        release.set()
        raise ValueError("the block's")
    assert done == ["background"]  # waited for: nothing runs on unattended


def test_lookahead_runs_the_latest_state_and_settles_on_it() -> None:
    """A job offered while one runs waits, and a later offer replaces it: the state it
    was for will never be asked for. `settle` waits for what runs."""
    gate = threading.Event()
    ran: list[str] = []

    def job(name: str) -> str:
        if name == "first":
            gate.wait(5)
        ran.append(name)
        return name.upper()

    with Lookahead[str]() as lookahead:
        lookahead.offer(1, lambda: job("first"))
        lookahead.offer(2, lambda: job("second"))  # waits behind the first ...
        lookahead.offer(3, lambda: job("third"))  # ... and is replaced
        lookahead.offer(3, lambda: job("third again"))  # the same state: nothing new
        gate.set()
        assert lookahead.settle() == "THIRD"
    assert ran == ["first", "third"]


def test_lookahead_settles_on_none_when_nothing_was_offered_since() -> None:
    with Lookahead[str]() as lookahead:
        assert lookahead.settle() is None
        lookahead.offer(1, lambda: "one")
        assert lookahead.settle() == "one"
        assert lookahead.settle() is None  # settled: nothing is kept


def test_lookahead_raises_a_jobs_error_and_waits_for_it_when_left() -> None:
    ended = threading.Event()

    def broken() -> str:
        time.sleep(0.05)
        ended.set()
        raise RuntimeError("a bug in a job")

    with pytest.raises(RuntimeError, match="a bug in a job"), Lookahead[str]() as lookahead:
        lookahead.offer(1, broken)
    assert ended.is_set()
