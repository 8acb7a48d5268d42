"""A sandbox backend that runs nothing: every command "succeeds" at once.

For measuring the engine without Docker (bench/bench_engine.py) and for tests of code
that only needs the seam. It never executes anything, so it is safe anywhere.
"""

from __future__ import annotations

import itertools
from pathlib import Path

from karma.sandbox.interface import ExecResult, SandboxSpec

_ids = itertools.count(1)


class FakeSandbox:
    def __init__(self, spec: SandboxSpec) -> None:
        self.id = f"fake-{next(_ids)}"
        self.image = spec.image
        self.commands: list[str] = []
        self.closed = False

    def exec(self, command: str, *, timeout_s: float, workdir: str | None = None) -> ExecResult:
        self.commands.append(command)
        return ExecResult(command, 0, "ok\n", 0.0)

    def copy_in(self, src: Path, dest: str) -> None:
        del src, dest

    def copy_out(self, src: str, dest: Path) -> None:
        del src, dest

    def close(self) -> None:
        self.closed = True


class FakeBackend:
    IMAGE = "karma/fake"
    """The image a build with this backend names (it runs nothing, so none is built)."""

    def __init__(self) -> None:
        self.started: list[FakeSandbox] = []

    def start(self, spec: SandboxSpec) -> FakeSandbox:
        sandbox = FakeSandbox(spec)
        self.started.append(sandbox)
        return sandbox

    def reap(self, *, keep_run_ids: frozenset[str] = frozenset()) -> list[str]:
        del keep_run_ids
        return []

    def reap_run(self, run_id: str) -> list[str]:
        del run_id
        return []
