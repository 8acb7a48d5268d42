"""The one place with concurrency: run a task DAG on an injected executor.

Ready tasks (every dependency succeeded) start up to `jobs` at a time, the one with the
longest remaining critical path first. A task's failure becomes its result; its
dependents are skipped with a reason and independent branches go on. So does an error a
task raises: KARMA's own error is that task's `failed` outcome, an environment problem
(Docker or the cluster lost, a key missing) is `infrastructure` and stops the run as
Ctrl-C does; anything else (a bug) stops and drains the run too, and is raised once what runs
has ended. A `can_start`
gate (the budget) may refuse new work. Ctrl-C cancels what waits and drains what runs:
`stop` is set so running attempts end at their next step, and the run ends interrupted.
Tests pass `SynchronousExecutor` and get a deterministic order. `run_each` runs a flat
list of independent calls the same way (the gates of one wave); `alongside` runs one call
in the background while the caller works (a build's sandbox image is made ready while its
planner thinks), and `ahead` hands the caller a wait for it (an attempt's sandbox starts
while its model thinks of the first reply). A `Lookahead` runs work for a state that may
not last, one job at a time (an attempt's checks while its model thinks of the next reply).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

import networkx as nx

from karma.errors import EnvironmentProblem, KarmaError

Status = Literal[
    "succeeded", "failed", "escalated", "skipped", "not_started", "interrupted", "infrastructure"
]
T = TypeVar("T", bound=Hashable)
Item = TypeVar("Item")
R = TypeVar("R")
B = TypeVar("B")


@dataclass(frozen=True)
class Outcome:
    status: Status
    reason: str = ""


class SynchronousExecutor(Executor):
    """Runs each submitted call at once, in the caller's thread."""

    def submit(self, fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> Future[R]:
        future: Future[R] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - handed to the scheduler through the future
            future.set_exception(exc)
        return future


def remaining_path(graph: nx.DiGraph, weight: Mapping[T, float]) -> dict[T, float]:
    """For each node, the heaviest path from it to a sink, itself included."""
    longest: dict[T, float] = {}
    for node in reversed(list(nx.topological_sort(graph))):
        tail = max((longest[s] for s in graph.successors(node)), default=0.0)
        longest[node] = weight.get(node, 1.0) + tail
    return longest


def run_dag(
    graph: nx.DiGraph,
    run_task: Callable[[T], Outcome],
    *,
    jobs: int,
    weight: Mapping[T, float],
    executor: Executor | None = None,
    done: Iterable[T] = (),
    can_start: Callable[[T], str | None] = lambda _task: None,
    stop: threading.Event | None = None,
    on_skip: Callable[[T, Outcome], None] = lambda _t, _o: None,
    on_interrupt: Callable[[], None] = lambda: None,
) -> dict[T, Outcome]:
    """Run every task of `graph` (edges point from a dependency to its dependent).

    `done` tasks count as succeeded already (a resumed run). `can_start` returns a
    reason to hold a task back (the budget), or None.
    """
    stop = stop or threading.Event()
    priority = remaining_path(graph, weight)
    results: dict[T, Outcome] = {task: Outcome("succeeded", "done before") for task in done}
    waiting = {n: {d for d in graph.predecessors(n) if d not in results} for n in graph}
    for task in results:
        waiting.pop(task, None)
    owned = executor is None
    pool: Executor = executor or ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="task")
    running: dict[Future[Outcome], T] = {}
    crashed: list[BaseException] = []

    def settle(task: T, outcome: Outcome) -> None:
        results[task] = outcome
        if outcome.status == "succeeded":
            for child in graph.successors(task):
                if child in waiting:
                    waiting[child].discard(task)
            return
        for child in nx.descendants(graph, task):
            if child not in results and child in waiting:
                skipped = Outcome("skipped", f"dependency {task} {outcome.status}")
                results[child] = skipped
                del waiting[child]
                on_skip(child, skipped)

    try:
        while waiting or running:
            ready = sorted(
                (t for t, deps in waiting.items() if not deps),
                key=lambda t: (-priority[t], str(t)),
            )
            for task in ready:
                if stop.is_set() or len(running) >= jobs:
                    break
                held = can_start(task)
                if held is not None:
                    del waiting[task]
                    settle(task, Outcome("not_started", held))
                    continue
                del waiting[task]
                running[pool.submit(run_task, task)] = task
            if not running:
                if stop.is_set():
                    break
                if not any(not deps for deps in waiting.values()):
                    break  # nothing can become ready: every path is blocked
                continue
            finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for future in finished:
                outcome = _outcome(future, crashed)
                if (outcome.status == "infrastructure" or crashed) and not stop.is_set():
                    stop.set()
                    on_interrupt()
                settle(running.pop(future), outcome)
    except KeyboardInterrupt:
        stop.set()
        on_interrupt()
        for future, task in running.items():
            try:
                results[task] = _outcome(future, crashed)
            except KeyboardInterrupt:
                results[task] = Outcome("interrupted", "interrupted")
        running.clear()
    finally:
        if owned:
            pool.shutdown(wait=True, cancel_futures=True)
    for task in waiting:
        results.setdefault(
            task,
            Outcome(
                "interrupted" if stop.is_set() else "not_started",
                "the run stopped before it started",
            ),
        )
    if crashed:
        raise crashed[0]
    return results


def _outcome(future: Future[Outcome], crashed: list[BaseException]) -> Outcome:
    """A finished task's outcome, its error made one (`crashed` keeps what is a bug)."""
    try:
        return future.result()
    except EnvironmentProblem as exc:
        return Outcome("infrastructure", f"infrastructure failure: {exc}")
    except KarmaError as exc:
        return Outcome("failed", f"{type(exc).__name__}: {exc}")
    except Exception as exc:  # noqa: BLE001 - a bug: raised once the run has drained
        crashed.append(exc)
        return Outcome("interrupted", f"stopped by an error: {type(exc).__name__}: {exc}")


def run_each(
    items: Sequence[Item],
    work: Callable[[Item], R],
    *,
    jobs: int,
    executor: Executor | None = None,
    on_start: Callable[[Item], None] = lambda _item: None,
    on_done: Callable[[Item, R], None] = lambda _item, _result: None,
) -> list[R]:
    """`work` on every item, up to `jobs` at once; the results in the items' order.

    `on_start` and `on_done` run in the caller's thread (a store or a view needs no lock):
    `on_start` in the items' order as each is submitted, `on_done` as each finishes, in
    the items' order with one job or the synchronous executor. An exception of `work`
    propagates once the calls already running have finished.
    """
    owned = executor is None
    pool: Executor = executor or ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="each")
    results: dict[int, R] = {}
    running: dict[Future[R], int] = {}
    pending = list(enumerate(items))
    try:
        while pending or running:
            while pending and len(running) < max(1, jobs):
                index, item = pending.pop(0)
                on_start(item)
                running[pool.submit(work, item)] = index
            finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for future in sorted(finished, key=running.__getitem__):
                index = running.pop(future)
                results[index] = future.result()
                on_done(items[index], results[index])
    finally:
        if owned:
            pool.shutdown(wait=True, cancel_futures=True)
    return [results[index] for index in range(len(items))]


def alongside(background: Callable[[], B], work: Callable[[], R]) -> tuple[B, R]:
    """`work` in the caller's thread while `background` runs in another; both results.

    The caller's `work` keeps Ctrl-C and its own errors; an error of either is raised
    once both have ended (the caller's first), so nothing runs on unattended.
    """
    with ahead(background) as result:
        done = work()
        return result(), done


@contextmanager
def ahead(background: Callable[[], B]) -> Iterator[Callable[[], B]]:
    """`background` starts in another thread; the caller's block gets a call that waits
    for its result (raising its error), which it may call any number of times.

    Leaving the block waits for `background`, so nothing runs on unattended: an error of
    the block comes first; one of `background` the block never asked for is raised then.
    """
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ahead")
    try:
        future = pool.submit(background)
        try:
            yield future.result
        except BaseException:
            wait([future])
            raise
        future.result()
    finally:
        pool.shutdown(wait=True)


class Lookahead(Generic[B]):
    """Work done before it is known to be wanted: `offer(key, job)` runs `job` for the
    state `key` names, in one background thread, one job at a time (a job offered while
    one runs waits, and replaces any that waits with it: only the latest state is worth
    the work). `settle()` waits for the latest job and returns what it made (None when
    none was offered): whether that is still of use is the caller's to judge. Used as a
    context manager: leaving it drops what waits and waits for what runs, so nothing runs
    on unattended."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lookahead")
        self._jobs: list[tuple[Hashable, Future[B]]] = []

    def __enter__(self) -> Lookahead[B]:
        return self

    def __exit__(self, *exc: object) -> None:
        jobs, self._jobs = self._jobs, []
        for _, future in jobs:
            future.cancel()
        self._pool.shutdown(wait=True)
        if exc[0] is None:  # a job's error (a bug: a job returns what it could not do)
            for _, future in jobs:
                if not future.cancelled():
                    future.result()

    def offer(self, key: Hashable, job: Callable[[], B]) -> None:
        if self._jobs and self._jobs[-1][0] == key:
            return  # under way, or done, for this very state
        for _, future in self._jobs:
            future.cancel()  # it had not started: no later state will want it
        self._jobs = [(k, f) for k, f in self._jobs if not f.cancelled()]
        self._jobs.append((key, self._pool.submit(job)))

    def settle(self) -> B | None:
        """What the latest job made (its error raised, and any earlier job's), once no
        job runs."""
        jobs, self._jobs = self._jobs, []
        results = [future.result() for _, future in jobs]
        return results[-1] if results else None
