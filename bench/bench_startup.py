"""How long `karma` takes to start, against `python -c pass` measured in the same run.

Each command runs REPEAT times as a fresh process; the median wall time is printed beside
the interpreter's own start-up, so a loaded machine shifts both figures alike. The targets
(issue 12): `karma --version` and `karma --help` within 150 ms, any command's `--help`
(its start-up without its own work) within 300 ms.

    .venv/bin/python bench/bench_startup.py [--repeat N] [--module]

`--module` runs `python -m karma` instead of the installed script, so `PYTHONPATH=$PWD`
measures a worktree's code rather than the one the venv's `karma` was installed from.
Each command runs once unmeasured first, with bytecode writing on, so every figure is
a warm start with `.pyc` files in place, as an installed `karma` has them.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

TARGETS_MS = {"--version": 150.0, "--help": 150.0}
DEFAULT_TARGET_MS = 300.0
COMMANDS = (
    ("--version",),
    ("--help",),
    ("build", "--help"),
    ("runs", "--help"),
    ("plan", "--help"),
    ("gate", "--help"),
    ("show", "--help"),
)


def _karma(module: bool) -> list[str]:
    """The `karma` script beside this interpreter (an installed entry point), else `-m`."""
    if module:
        return [sys.executable, "-m", "karma"]
    script = Path(sys.executable).with_name("karma")
    if script.is_file():
        return [str(script)]
    found = shutil.which("karma")
    return [found] if found else [sys.executable, "-m", "karma"]


def _median_ms(argv: list[str], repeat: int) -> float:
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "100"}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # a cold compile is no start-up a user sees
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--module", action="store_true", help="run `python -m karma`")
    args = parser.parse_args()
    karma = _karma(args.module)
    baseline = _median_ms([sys.executable, "-c", "pass"], args.repeat)
    print(f"{'command':<24} {'median':>9} {'minus python':>13} {'target':>8}")
    print(f"{'python -c pass':<24} {baseline:>7.0f}ms {'':>13} {'':>8}")
    missed = 0
    for command in COMMANDS:
        ms = _median_ms([*karma, *command], args.repeat)
        target = TARGETS_MS.get(command[0], DEFAULT_TARGET_MS) if len(command) == 1 else 300.0
        verdict = "ok" if ms <= target else "SLOW"
        missed += verdict != "ok"
        name = "karma " + " ".join(command)
        print(f"{name:<24} {ms:>7.0f}ms {ms - baseline:>+11.0f}ms {target:>6.0f}ms {verdict}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
