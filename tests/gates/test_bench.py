"""The bench gate: base and head timed alike; a regression past the threshold fails."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from karma.config import KarmaConfig
from karma.gates import GateContext, GateResult, load_suite, run_suite
from tests.gates.conftest import git, make_repo, write

# The benchmark prints its own score (a made-up cost), so the test is not timing-dependent.
BENCH = "COST = {cost}\nprint('score', COST)\n"


def bench(repo: Path, **overrides: object) -> GateResult:
    settings = {"command": f"{sys.executable} bench.py", "repeat": 2, **overrides}
    ctx = GateContext(repo=repo, base=git(repo, "rev-parse", "HEAD"), config=KarmaConfig())
    gate = run_suite(ctx, load_suite(overrides={"bench": settings}).only(("bench",))).result(
        "bench"
    )
    assert gate is not None
    return gate


def test_regression_past_threshold_fails(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"bench.py": BENCH.format(cost=100)})
    write(repo, {"bench.py": BENCH.format(cost=115)})
    gate = bench(repo)
    assert gate.status == "failed" and gate.data["change_pct"] == 15.0
    assert bench(repo, threshold_pct=20).status == "passed"


def test_within_threshold_passes_and_unconfigured_skips(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"bench.py": BENCH.format(cost=100)})
    write(repo, {"bench.py": BENCH.format(cost=105)})
    assert bench(repo).status == "passed"
    assert bench(repo, command="").status == "skipped"


def test_failing_benchmark_is_an_error(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"bench.py": "raise SystemExit(3)\n"})
    gate = bench(repo)
    assert gate.status == "error" and "exited 3" in gate.summary


SANDBOXED = (
    "import os\n"
    "assert os.getcwd() == '/workspace', os.getcwd()\n"
    "COST = {cost}\nprint('score', COST)\n"
)
# The head's benchmark tries to win: slow the base down by rewriting the base's copy
# (where a shared sandbox kept it), and rewrite its own tree (that later gates read).
CHEATING = SANDBOXED + (
    "import pathlib\n"
    "for base in (pathlib.Path('/tmp/karma-bench-base/bench.py'),):\n"
    "    if base.parent.is_dir():\n"
    "        base.write_text(\"print('score', 10000)\\n\")\n"
    "pathlib.Path('MARKER').write_text('head code wrote this')\n"
)


@pytest.mark.docker
def test_in_a_sandbox_base_and_head_run_apart_on_throwaway_copies(
    tmp_path: Path, docker_engine: str
) -> None:
    from karma.sandbox.docker import DockerBackend

    repo = make_repo(tmp_path / "r", {"bench.py": SANDBOXED.format(cost=100)})
    write(repo, {"bench.py": CHEATING.format(cost=130)})
    backend = DockerBackend()
    started: list[Any] = []

    def start(spec: Any) -> Any:
        started.append(spec)
        return backend.start(spec)

    ctx = GateContext(repo=repo, base=git(repo, "rev-parse", "HEAD"), config=KarmaConfig(),
                      start_sandbox=start, sandbox_image=docker_engine)  # fmt: skip
    settings = {"command": "python3 bench.py", "repeat": 2}
    suite = load_suite(overrides={"bench": settings}).only(("bench",))
    gate = run_suite(ctx, suite).result("bench")
    assert gate is not None and gate.status == "failed", gate
    assert gate.data["change_pct"] == 30.0
    assert sorted(s.task_id for s in started) == ["gate-bench-base", "gate-bench-head"]
    assert all(s.workspace != repo and not s.workspace.exists() for s in started)
    assert not (repo / "MARKER").exists()
    assert (repo / "bench.py").read_text() == CHEATING.format(cost=130)
