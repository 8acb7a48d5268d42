"""The Node stack's speed (issue 16), against the same work done directly, in one run.

1. Image: a project with 71 locked npm packages (bench/fixtures/node-express). Its stack
   image is built once (the toolchain too on a machine that has none; the download needs
   the npm registry), then asked for again with it cached, as every build does: target
   <= 1 s, printed beside `docker image inspect` of the same tag.
2. Checks: the Node stack's checks of one task on examples/dashboard, in a KARMA sandbox,
   as an attempt runs them (its test script compiles, so no separate tsc --noEmit): target
   <= 5 s, printed beside `npm test` run directly in a plain container of the same image,
   with the sandbox's CPU limit (`sandbox.cpus`) and without one.

    python bench/bench_node.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from karma.config import KarmaConfig
from karma.executor.unit import run_checks
from karma.home import builtin_dir
from karma.recipes import load_stacks
from karma.sandbox import spec_from_config
from karma.sandbox.docker import DockerBackend
from karma.sandbox.images import ensure_image
from karma.testcommand import for_tasks
from karma.testing.repos import git, init_repo

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "node-express"


def _median(samples: list[float]) -> float:
    return statistics.median(samples)


def image(config: KarmaConfig, runs: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        repo = init_repo(Path(tmp) / "express", source=FIXTURE)
        started = time.perf_counter()
        tag = ensure_image("node", repo, config)
        first = time.perf_counter() - started
        (repo / "README.md").write_text("a change that is no dependency file\n")
        cached = []
        for _ in range(runs):
            started = time.perf_counter()
            assert ensure_image("node", repo, config) == tag
            cached.append(time.perf_counter() - started)
        inspect = []
        for _ in range(runs):
            started = time.perf_counter()
            subprocess.run(["docker", "image", "inspect", tag], check=True, capture_output=True)
            inspect.append(time.perf_counter() - started)
    print(f"image of a 71-package Node project ({tag}):")
    print(f"  first ensure_image (built, or cached from an earlier run) {first:8.2f} s")
    print(f"  cached rebuild, median of {runs}                     {_median(cached):8.2f} s"
          f"   (target <= 1 s: {'PASS' if _median(cached) <= 1 else 'MISS'})")  # fmt: skip
    print(f"  baseline: docker image inspect, median               {_median(inspect):8.2f} s")


def checks(config: KarmaConfig, runs: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        repo = init_repo(Path(tmp) / "dashboard", source=builtin_dir("examples") / "dashboard")
        node = next(s for s in load_stacks() if s.name == "node")
        stack = for_tasks(repo, git(repo, "rev-parse", "HEAD").strip(), node)  # as a build
        tag = ensure_image("node", repo, config)
        backend = DockerBackend()
        ours = []
        for index in range(runs):
            spec = spec_from_config(config, image=tag, workspace=repo, run_id="bench-node",
                                    task_id=f"t{index}")  # fmt: skip
            started = time.perf_counter()
            box = backend.start(spec)
            try:
                done = run_checks(stack, repo, box, ["src/metrics.ts"], 300)
            finally:
                box.close()
            ours.append(time.perf_counter() - started)
            assert done and all(result.ok for _, result in done), done
            shutil.rmtree(repo / "dist", ignore_errors=True)
        cpus = config.sandbox.cpus
        direct: dict[str, list[float]] = {
            f"--cpus {cpus:g}, as the sandbox": [],
            "no CPU limit": [],
        }
        for _ in range(runs):
            for label, limit in zip(direct, ([f"--cpus={cpus:g}"], []), strict=True):
                started = time.perf_counter()
                subprocess.run(
                    ["docker", "run", "--rm", "--network", "none", *limit, "-v",
                     f"{repo}:/workspace", "-w", "/workspace", tag,
                     "sh", "-c", "npm test --silent"],
                    check=True, capture_output=True,
                )  # fmt: skip
                direct[label].append(time.perf_counter() - started)
                shutil.rmtree(repo / "dist", ignore_errors=True)
    names = " + ".join(c.name for c in stack.checks)
    print(f"checks of one task on examples/dashboard ({names}), sandbox start included:")
    print(f"  KARMA's sandbox (sandbox.cpus = {cpus:g}), median of {runs}"
          f"     {_median(ours):8.2f} s"
          f"   (target <= 5 s: {'PASS' if _median(ours) <= 5 else 'MISS'})")  # fmt: skip
    for label, samples in direct.items():
        print(f"  baseline: docker run ... npm test, {label:<24} {_median(samples):8.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    base = os.environ.get("KARMA_BASE_IMAGE", "karma/base:bookworm")
    config = KarmaConfig(sandbox={"base_image": base})
    image(config, args.runs)
    checks(config, args.runs)


if __name__ == "__main__":
    main()
