"""Engine overhead per task and end-to-end speedup of a parallel build (issue 4).

1. Overhead: the demo build with the scripted model answering at once and a sandbox
   backend that runs nothing (karma/sandbox/fake.py), so what remains of each attempt is
   the engine: worktrees, commits, merges, the run record, events. Median and p95 per
   task over several builds; a bare `git worktree add` + `remove` is the baseline.
   Target: ≤ 50 ms median.
2. Speedup: a real build (Docker sandboxes, real git) of four independent tasks whose
   model, the loopback server speaking the Anthropic protocol, takes `--latency` seconds
   per reply (3 s and 5 s by default: a fast real model's tool-call turn, and a typical
   one): wall time of the whole `karma build` process with --jobs 4 against --jobs 1,
   start-up, planning (importing an SDK alone takes about a second) and the report
   included. Target: ≥ 3×.
3. Phases (issue 12): the same width-4 build at `--phases-latency` s per reply (1.5 by
   default), the quality gates on, with --jobs 4 and --jobs 1: the whole build's wall time
   split into start (process start to `run_started`), plan (to the first `task_started`),
   tasks (to the last task event), gates (to the last `gate_finished`) and finish (to the
   process's end), from the run's own event times; and the whole build's speedup.
   Target: ≥ 3×; fixed cost (everything but the model's time and the slowest gate) ≤ 3 s.

    python bench/bench_engine.py [--builds 5] [--latency 3,5] [--skip-docker]
    python bench/bench_engine.py --phases-only [--phases-latency 1.5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from karma.config import load_config
from karma.engine import build
from karma.events import EventBus
from karma.models.script import parse_script
from karma.sandbox.fake import FakeBackend
from karma.store import Store
from karma.testing.demo import REQUEST, demo_script, example_project
from karma.testing.model_server import ModelServer
from karma.testing.repos import git, init_repo


def _seconds(start: str, end: str) -> float:
    parse = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00"))  # noqa: E731
    return (parse(end) - parse(start)).total_seconds()


def overhead(builds: int, jobs: int) -> None:
    per_task: list[float] = []
    baseline: list[float] = []
    script = demo_script()
    for conv in script["conversations"]:
        for reply in conv["replies"]:
            reply.pop("latency_s", None)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "script.yaml"
        import yaml

        path.write_text(yaml.safe_dump(script))
        for number in range(builds):
            repo = init_repo(Path(tmp) / f"repo{number}", source=example_project())
            config = load_config(
                repo,
                flags={
                    "providers.scripted.script": path,
                    "build.jobs": jobs,
                    **{
                        f"models.{tier}": f"scripted:{tier}"
                        for tier in ("small", "medium", "large")
                    },
                },
            )
            store = Store(repo / ".karma" / "karma.db")
            result = build(
                REQUEST,
                repo=repo,
                config=config,
                store=store,
                bus=EventBus(),
                gates=False,
                backend=FakeBackend(),
                image=FakeBackend.IMAGE,
            )
            assert result.status == "succeeded", result
            for attempt in store.attempts(result.run_id):
                model_s = (
                    sum(
                        c.latency_ms
                        for c in store.model_calls(result.run_id, attempt.task_id)
                        if c.attempt == attempt.number
                    )
                    / 1000
                )
                per_task.append(_seconds(attempt.started_at, attempt.finished_at) - model_s)
            store.close()
            started = time.perf_counter()
            git(repo, "worktree", "add", "-q", "-b", "bench", str(Path(tmp) / f"wt{number}"))
            git(repo, "worktree", "remove", "--force", str(Path(tmp) / f"wt{number}"))
            baseline.append(time.perf_counter() - started)
    per_task.sort()
    median = statistics.median(per_task) * 1000
    p95 = per_task[int(len(per_task) * 0.95) - 1] * 1000
    print(
        f"engine overhead per task (--jobs {jobs}): median {median:.1f} ms, p95 {p95:.1f} ms "
        f"over {len(per_task)} tasks (baseline: bare worktree add+remove "
        f"{statistics.median(baseline) * 1000:.1f} ms)"
    )
    if jobs == 1:
        print(f"target <= 50 ms median: {'PASS' if median <= 50 else 'MISS'}")


def width_four_script(latency: float, width: int = 4) -> dict[str, Any]:
    """A plan of `width` independent one-file tasks, each two replies of `latency` s."""
    tasks = [
        {
            "id": f"part{i}",
            "title": f"Part {i}",
            "description": f"Add inventory/part{i}.py.",
            "deps": [],
            "estimated_tokens": 5000,
            "kind": "code",
            "files": [f"inventory/part{i}.py"],
        }
        for i in range(width)
    ]
    conversations: list[dict[str, Any]] = [
        {
            "match": {"tool": "submit_plan"},
            "replies": [{"tool_calls": [{"name": "submit_plan", "arguments": {"tasks": tasks}}]}],
        }
    ]
    for i in range(width):
        conversations.append(
            {
                "match": {"user": [f"Task part{i}:"]},
                "replies": [
                    {
                        "latency_s": latency,
                        "tool_calls": [
                            {
                                "name": "write_file",
                                "arguments": {
                                    "path": f"inventory/part{i}.py",
                                    "content": f"PART = {i}\n",
                                },
                            }
                        ],
                    },
                    {
                        "latency_s": latency,
                        "tool_calls": [{"name": "finish", "arguments": {"summary": "done"}}],
                    },
                ],
            }
        )
    return {"conversations": conversations}


def _build_env(server: ModelServer, image: str) -> dict[str, str]:
    """The environment of a benched `karma build`: the loopback model, the base image,
    and KARMA's modules compiled once as an installed KARMA's are (a
    PYTHONDONTWRITEBYTECODE in the caller's environment would have every build compile
    them from source again, ~0.1 s at start and more as the gates load: no cost a user sees)."""
    env = {
        **os.environ,
        "ANTHROPIC_BASE_URL": server.anthropic_base_url,
        "ANTHROPIC_API_KEY": "bench-key",
        "KARMA_BASE_IMAGE": image,
    }
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def speedup(latency: float) -> None:
    image = os.environ.setdefault("KARMA_BASE_IMAGE", "karma/base:bookworm")
    times = {}
    with (
        tempfile.TemporaryDirectory() as tmp,
        ModelServer(parse_script(width_four_script(latency))) as server,
    ):
        env = _build_env(server, image)
        config = Path(tmp) / "karma.toml"
        config.write_text(
            "[models]\n"
            + "".join(
                f'{tier} = "anthropic:bench-{tier}"\n' for tier in ("small", "medium", "large")
            )
        )
        for jobs in (1, 4, 1, 4):
            repo = init_repo(Path(tmp) / f"repo{len(times)}-{jobs}", source=example_project())
            started = time.perf_counter()
            done = subprocess.run(
                [
                    "karma",
                    "-C",
                    str(repo),
                    "--config",
                    str(config),
                    "build",
                    "--no-gates",
                    "--jobs",
                    str(jobs),
                    "Four parts",
                ],
                env=env,
                capture_output=True,
                text=True,
            )
            assert done.returncode == 0, done.stderr[-2000:]
            times.setdefault(jobs, []).append(time.perf_counter() - started)
    one, four = min(times[1]), min(times[4])
    print(
        f"width-4 build, {latency:.1f} s per model reply: --jobs 1 {one:.1f} s, "
        f"--jobs 4 {four:.1f} s, speedup {one / four:.2f}x "
        f"(target >= 3x: {'PASS' if one / four >= 3 else 'MISS'})"
    )


PHASES = ("start", "plan", "tasks", "gates", "finish")
TASK_END = ("task_succeeded", "task_failed", "task_escalated", "task_merged")


def _phases(db: Path, began: datetime, ended: datetime) -> dict[str, float]:
    """The build's wall time by phase, from its recorded events (see the docstring)."""
    store = Store(db)
    try:
        run_id = store.runs(1)[0].id
        events = store.events(run_id)
        gates = store.gate_results(run_id)
    finally:
        store.close()
    at = lambda row: datetime.fromisoformat(row.ts.replace("Z", "+00:00"))  # noqa: E731
    first = lambda kind: next(at(e) for e in events if e.kind == kind)  # noqa: E731
    last = lambda kinds: max(at(e) for e in events if e.kind in kinds)  # noqa: E731
    marks = [
        began,
        first("run_started"),
        first("task_started"),
        last(TASK_END),
        last(("gate_finished",)),
        ended,
    ]
    split = {p: (b - a).total_seconds() for p, a, b in zip(PHASES, marks, marks[1:], strict=False)}
    split["slowest gate"] = max((float(g.duration_s) for g in gates), default=0.0)
    return split


def phases(latency: float) -> None:
    """The width-4 build, gates on, --jobs 4 then --jobs 1: phase breakdown and speedup."""
    image = os.environ.setdefault("KARMA_BASE_IMAGE", "karma/base:bookworm")
    rows: dict[int, dict[str, float]] = {}
    with (
        tempfile.TemporaryDirectory() as tmp,
        ModelServer(parse_script(width_four_script(latency))) as server,
    ):
        env = _build_env(server, image)
        config = Path(tmp) / "karma.toml"
        config.write_text(
            "[models]\n"
            + "".join(
                f'{tier} = "anthropic:bench-{tier}"\n' for tier in ("small", "medium", "large")
            )
            + 'reviewer = "anthropic:bench-review"\n'
            + "[gates.overrides.review]\nenabled = false\n"
        )
        for jobs in (0, 4, 1):  # 0: a warm-up (the stack image built, the modules compiled)
            repo = init_repo(Path(tmp) / f"phases-{jobs}", source=example_project())
            began = datetime.now(UTC)
            started = time.perf_counter()
            done = subprocess.run(
                ["karma", "-C", str(repo), "--config", str(config), "build",
                 "--jobs", str(jobs or 4), "Four parts"],
                env=env, capture_output=True, text=True,
            )  # fmt: skip
            wall = time.perf_counter() - started
            assert done.returncode == 0, done.stderr[-2000:]
            split = _phases(repo / ".karma" / "karma.db", began, datetime.now(UTC))
            if jobs:
                rows[jobs] = {"total": wall, **split}
    model_s = 2 * latency  # two replies per task, on the critical path
    print(f"width-4 build with gates, {latency:.1f} s per model reply (seconds):")
    print(f"{'':10}" + "".join(f"{p:>8}" for p in (*PHASES, "total")) + f"{'fixed':>8}")
    for jobs, row in rows.items():
        fixed = row["total"] - model_s * (1 if jobs >= 4 else 4) - row["slowest gate"]
        row["fixed"] = fixed
        print(
            f"--jobs {jobs:<3}"
            + "".join(f"{row[p]:>8.1f}" for p in (*PHASES, "total"))
            + f"{fixed:>8.1f}"
        )
    ratio = rows[1]["total"] / rows[4]["total"]
    # Per-task overhead c (the tasks phase beyond the model), alone and four at once, and
    # G, the rest (start, plan, gates, finish): --jobs 1 takes 4(m + c1) + G, --jobs 4
    # m + c4 + G, so 3x needs G <= (m + 4 c1 - 3 c4) / 2 with m the model time of a task.
    alone, together = (rows[1]["tasks"] - 4 * model_s) / 4, rows[4]["tasks"] - model_s
    rest = sum(rows[4][p] for p in PHASES if p != "tasks")
    bound = (model_s + 4 * alone - 3 * together) / 2
    print(
        f"per-task overhead {alone:.2f} s alone, {together:.2f} s four at once; start, plan, "
        f"gates and finish {rest:.1f} s (3x needs them <= {bound:.2f} s)"
    )
    print(
        f"speedup {ratio:.2f}x (target >= 3x: {'PASS' if ratio >= 3 else 'MISS'}); fixed cost "
        f"with --jobs 4 {rows[4]['fixed']:.1f} s beyond the model and the slowest gate "
        f"(target <= 3 s: {'PASS' if rows[4]['fixed'] <= 3 else 'MISS'})"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--builds", type=int, default=5)
    parser.add_argument("--latency", default="3,5", help="seconds per model reply, comma-separated")
    parser.add_argument("--skip-docker", action="store_true")
    parser.add_argument("--phases-only", action="store_true")
    parser.add_argument("--phases-latency", type=float, default=1.5)
    args = parser.parse_args()
    if args.phases_only:
        phases(args.phases_latency)
        return
    overhead(args.builds, jobs=1)
    overhead(args.builds, jobs=4)  # with 4 tasks at once on this machine's 2 cores
    if not args.skip_docker:
        for latency in args.latency.split(","):
            speedup(float(latency))
        phases(args.phases_latency)


if __name__ == "__main__":
    main()
