"""Shared pieces of the heal tests: the real pattern table, a store, and a fake sandbox."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from karma.config import HealConfig
from karma.heal import Evidence, Healer, PatternTable
from karma.recipes import load_failure_patterns
from karma.sandbox.interface import ExecResult
from karma.store import Store

PYTEST_FAIL = """\
=================================== FAILURES ===================================
___________________________________ test_add ___________________________________
E       assert -1 == 5
tests/test_calc.py:5: AssertionError
=========================== short test summary info ============================
FAILED tests/test_calc.py::test_add - assert -1 == 5
========================= 1 failed, 2 passed in 0.03s ==========================
"""


@pytest.fixture(scope="session")
def table() -> PatternTable:
    return PatternTable(load_failure_patterns())


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "karma.db")
    yield s
    s.close()


@pytest.fixture
def make_healer(table: PatternTable, store: Store) -> Callable[..., Healer]:
    def make(**heal: object) -> Healer:
        retries = heal.pop("max_retries", 3)
        assert isinstance(retries, int)
        return Healer(
            store, HealConfig.model_validate(heal), table, max_retries=retries,
            rng=random.Random(7), run_id="run-1",
        )  # fmt: skip

    return make


def evidence(text: str, *, step: str = "test", exit_code: int = 1, tool: str | None = None,
             limit: str | None = None) -> Evidence:  # fmt: skip
    return Evidence.from_log(text, step=step, exit_code=exit_code, tool=tool, limit=limit)  # type: ignore[arg-type]


@dataclass
class FakeSandbox:
    """A real Sandbox with canned behaviour: replies are taken in order per command prefix."""

    replies: dict[str, list[ExecResult]] = field(default_factory=dict)
    id: str = "fake"
    image: str = "fake:latest"
    commands: list[str] = field(default_factory=list)

    def exec(self, command: str, *, timeout_s: float, workdir: str | None = None) -> ExecResult:
        self.commands.append(command)
        for prefix, queue in self.replies.items():
            if command.startswith(prefix) and queue:
                return queue.pop(0) if len(queue) > 1 else queue[0]
        return ExecResult(command, 0, "", 0.0)

    def copy_in(self, src: Path, dest: str) -> None:
        pass

    def copy_out(self, src: str, dest: Path) -> None:
        pass

    def close(self) -> None:
        pass
