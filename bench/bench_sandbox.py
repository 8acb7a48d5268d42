"""Sandbox speed: cold start and per-command overhead, against the docker CLI in the same run.

    .venv/bin/python bench/bench_sandbox.py [--runs 20] [--image karma/base:bookworm]

Prints median and p95 (ms) of:
- cold start: container create to the first command (`true`) done, KARMA's hardened sandbox,
  against `docker run --rm IMAGE true`;
- exec overhead: one `true` in a running sandbox, through the runner (default) and with one
  `exec` per command, against `docker exec ID true`.
The target is an exec overhead of at most 60 ms (median); figures are printed, not asserted.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from karma.config import KarmaConfig
from karma.sandbox import spec_from_config
from karma.sandbox.docker import DockerBackend

TARGET_MS = 60.0


def timed(action: Callable[[], object], runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def p95(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def row(name: str, samples: list[float]) -> float:
    median = statistics.median(samples)
    print(f"  {name:<44} median {median:7.1f} ms   p95 {p95(samples):7.1f} ms   (n={len(samples)})")
    return median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument(
        "--image", default=os.environ.get("KARMA_BASE_IMAGE", "karma/base:bookworm")
    )
    args = parser.parse_args()
    runs = max(20, args.runs)
    config = KarmaConfig()
    backend = DockerBackend()
    plain = DockerBackend(persistent=False)
    workspace = Path(tempfile.mkdtemp(prefix="karma-bench-"))

    def spec(task: str) -> object:
        return spec_from_config(config, image=args.image, workspace=workspace, run_id="bench",
                                task_id=task)  # fmt: skip

    print(f"sandbox bench: image {args.image}, {runs} runs each, engine {backend.ping()}")
    print("cold start (create to first command done):")

    cold_samples = []
    for _ in range(runs):
        start = time.perf_counter()
        cold_box = backend.start(spec("cold"))  # type: ignore[arg-type]
        cold_box.exec("true", timeout_s=30)
        cold_samples.append((time.perf_counter() - start) * 1000)
        cold_box.close()  # removal is not part of the cold start
    karma_cold = row("karma sandbox (hardened)", cold_samples)
    docker_run = row(
        "docker run --rm IMAGE true",
        timed(
            lambda: subprocess.run(
                ["docker", "run", "--rm", "--network", "none", args.image, "true"], check=True
            ),
            runs,
        ),
    )

    print("exec overhead (`true` in a running sandbox):")
    box = backend.start(spec("exec"))  # type: ignore[arg-type]
    slow_box = plain.start(spec("exec-plain"))  # type: ignore[arg-type]
    try:
        box.exec("true", timeout_s=30)  # the runner starts on the first command
        runner = row("karma exec (runner)", timed(lambda: box.exec("true", timeout_s=30), runs))
        per_exec = row("karma exec (one exec per command)",
                       timed(lambda: slow_box.exec("true", timeout_s=30), runs))  # fmt: skip
        cli = row(
            "docker exec ID true (CLI)",
            timed(lambda: subprocess.run(["docker", "exec", box.id, "true"], check=True), runs),
        )
    finally:
        box.close()
        slow_box.close()
    print()
    print(f"cold start: karma {karma_cold:.0f} ms vs docker run {docker_run:.0f} ms "
          f"({karma_cold / docker_run:.2f}x)")  # fmt: skip
    print(f"exec: runner {runner:.0f} ms, one exec per command {per_exec:.0f} ms, "
          f"docker exec CLI {cli:.0f} ms")  # fmt: skip
    verdict = "MET" if runner <= TARGET_MS else "MISSED"
    print(f"target exec overhead <= {TARGET_MS:.0f} ms median: {verdict} ({runner:.1f} ms)")


if __name__ == "__main__":
    main()
