"""Gates run in waves: independent ones at once (the sandbox users started first), the
timed bench alone, the gates that read the others' results last (data in
karma.gates.suite)."""

from __future__ import annotations

import threading
import time

from karma.gates import load_suite
from karma.gates.suite import waves
from karma.scheduler import SynchronousExecutor, run_each


def _names(sandboxed: bool) -> list[list[str]]:
    return [[g.name for g in wave] for wave in waves(load_suite(), sandboxed=sandboxed)]


def test_the_default_suite_in_waves() -> None:
    assert _names(sandboxed=True) == [
        ["tests", "audit", "secrets", "sast"],
        ["bench"],
        ["approval"],
        ["review"],
    ]
    assert _names(sandboxed=False) == [
        ["secrets", "sast", "audit", "tests"],
        ["bench"],
        ["approval"],
        ["review"],
    ]


def test_run_each_runs_at_once_and_keeps_the_items_order() -> None:
    inside, peak, lock = [0], [0], threading.Lock()
    started: list[str] = []
    finished: list[str] = []

    def work(item: str) -> str:
        with lock:
            inside[0] += 1
            peak[0] = max(peak[0], inside[0])
        time.sleep(0.2 if item == "slow" else 0.05)
        with lock:
            inside[0] -= 1
        return item.upper()

    results = run_each(
        ["slow", "a", "b"],
        work,
        jobs=3,
        on_start=started.append,
        on_done=lambda item, _r: finished.append(item),
    )
    assert results == ["SLOW", "A", "B"]
    assert peak[0] >= 2 and started == ["slow", "a", "b"]
    assert finished[-1] == "slow"  # reported as it finishes, results still in order


def test_run_each_with_one_job_is_in_order() -> None:
    done: list[int] = []
    results = run_each(
        [3, 1, 2], lambda n: n * 10, jobs=1, executor=SynchronousExecutor(),
        on_done=lambda n, _r: done.append(n),
    )  # fmt: skip
    assert results == [30, 10, 20] and done == [3, 1, 2]
