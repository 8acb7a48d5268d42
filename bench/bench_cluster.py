"""A build's attempts on a Dask cluster against the same build run locally (issue 17).

Eight independent one-file tasks whose model (the loopback server speaking the Anthropic
protocol) takes `--latency` s per reply: `karma build --jobs 4` with the attempts run by
the build itself, against `karma build --executor dask://…` on a scheduler and two
`dask worker` processes of two threads each (each worker with the model URL and key in
its own environment, as on a real cluster). Both workers use this machine's Docker
engine: the bench measures what the cluster adds (the scheduler, the bundles out and
back, the verification, the record sent home), not a second machine's CPUs. Wall time of
the whole `karma build` process, best of `--rounds`. Target: the same within 15%.

    .venv/bin/python bench/bench_cluster.py [--latency 1.5] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench_engine import width_four_script

from karma.models.script import parse_script
from karma.testing.demo import example_project
from karma.testing.model_server import ModelServer
from karma.testing.repos import init_repo

KARMA = str(Path(sys.executable).with_name("karma"))
TASKS = 8
TARGET = 0.15


@contextmanager
def cluster(where: Path, env: dict[str, str], workers: int, threads: int) -> Iterator[str]:
    file = where / "scheduler.json"
    dask = [sys.executable, "-m", "dask"]
    quiet = subprocess.DEVNULL
    scheduler = [*dask, "scheduler", "--host", "127.0.0.1", "--no-dashboard",
                 "--scheduler-file", str(file)]  # fmt: skip
    procs = [subprocess.Popen(scheduler, stdout=quiet, stderr=quiet)]
    try:
        for n in range(workers):
            procs.append(subprocess.Popen(
                [*dask, "worker", "--scheduler-file", str(file), "--name", f"w{n}",
                 "--preload", "karma.executor.worker",
                 "--nthreads", str(threads), "--no-dashboard"],
                env=env, stdout=quiet, stderr=quiet))  # fmt: skip
        deadline = time.monotonic() + 60
        while not file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        address = str(json.loads(file.read_text())["address"])
        from distributed import Client

        with Client(address, timeout=60) as client:
            client.wait_for_workers(workers, timeout=60)
        yield address
    finally:
        for proc in reversed(procs):
            proc.terminate()
            proc.wait()


def timed_build(repo: Path, config: Path, env: dict[str, str], *extra: str) -> float:
    started = time.perf_counter()
    done = subprocess.run(
        [KARMA, "-C", str(repo), "--config", str(config), "build", "--json", "--no-gates",
         "--jobs", "4", *extra, "Eight parts"],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=1.5)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    image = os.environ.setdefault("KARMA_BASE_IMAGE", "karma/base:bookworm")
    script = parse_script(width_four_script(args.latency, width=TASKS))
    with tempfile.TemporaryDirectory() as tmp, ModelServer(script) as server:
        env = {**os.environ, "ANTHROPIC_BASE_URL": server.anthropic_base_url,
               "ANTHROPIC_API_KEY": "bench-key", "KARMA_BASE_IMAGE": image,
               "KARMA_WORKER_CACHE": f"{tmp}/worker-cache"}  # fmt: skip
        config = Path(tmp) / "karma.toml"
        tiers = ("small", "medium", "large")
        config.write_text("[models]\n" + "".join(f'{t} = "anthropic:bench-{t}"\n' for t in tiers))
        times: dict[str, list[float]] = {"local": [], "dask": []}
        with cluster(Path(tmp), env, workers=2, threads=2) as address:
            for n in range(args.rounds):
                for kind in ("local", "dask"):
                    repo = init_repo(Path(tmp) / f"repo-{kind}-{n}", source=example_project())
                    extra = ["--executor", "dask://" + address.removeprefix("tcp://")] \
                        if kind == "dask" else []  # fmt: skip
                    times[kind].append(timed_build(repo, config, env, *extra))
    local, dask = min(times["local"]), min(times["dask"])
    delta = dask / local - 1
    print(f"{TASKS} independent tasks, {args.latency:.1f} s per model reply, best of {args.rounds}")
    for kind, seconds in times.items():
        print(f"  {kind:5} rounds: " + ", ".join(f"{s:.1f} s" for s in seconds))
    print(f"baseline  local  --jobs 4:                     {local:6.1f} s")
    print(f"cluster   2 workers x 2 threads (--jobs 4):    {dask:6.1f} s  ({delta:+.1%})")
    print(f"target    within {TARGET:.0%}: {'met' if abs(delta) <= TARGET else 'MISSED'}")


if __name__ == "__main__":
    main()
