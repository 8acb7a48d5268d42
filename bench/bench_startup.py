"""How long `karma` takes to start, against `python -c pass` measured in the same run.

Each command runs REPEAT times as a fresh process, in rounds (the interpreter, then each
command, then again), and its median wall time is printed beside the interpreter's own
start-up, so a loaded machine shifts both figures alike; the CPU time (user + system,
median) beside it says what the start-up costs whatever else the machine runs.
`python -c 'import typer'` is printed too: the CLI library's own import, the floor under
any help text. The targets
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
FIRST = (("--version",), ("--help",))
EXTRA = (("runs", "prune", "--help"), ("memory", "show", "--help"))


def _commands() -> tuple[tuple[str, ...], ...]:
    """`--version`, `--help`, then each command's `--help` (the table's, where it has one)."""
    try:
        from karma.cli.commands import COMMANDS

        names: tuple[str, ...] = tuple(COMMANDS)
    except ImportError:  # a KARMA from before the table
        names = ("build", "runs", "plan", "gate", "show")
    return (*FIRST, *((name, "--help") for name in names), *EXTRA)


def _karma(module: bool) -> list[str]:
    """The `karma` script beside this interpreter (an installed entry point), else `-m`."""
    if module:
        return [sys.executable, "-m", "karma"]
    script = Path(sys.executable).with_name("karma")
    if script.is_file():
        return [str(script)]
    found = shutil.which("karma")
    return [found] if found else [sys.executable, "-m", "karma"]


def _timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """One run's wall time and CPU time (user + system), in ms."""
    start = time.perf_counter()
    child = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, _, usage = os.wait4(child.pid, 0)
    wall = (time.perf_counter() - start) * 1000
    child.returncode = 0  # reaped here, not by Popen
    return wall, (usage.ru_utime + usage.ru_stime) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--module", action="store_true", help="run `python -m karma`")
    args = parser.parse_args()
    karma = _karma(args.module)
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "100"}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # a cold compile is no start-up a user sees
    runs: dict[tuple[str, ...], list[str]] = {(): [sys.executable, "-c", "pass"]}
    runs[("import typer",)] = [sys.executable, "-c", "import typer"]  # the floor of any help
    runs.update({command: [*karma, *command] for command in _commands()})
    for argv in runs.values():  # writes the .pyc files
        subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # Round by round, so a change in the machine's load falls on every command alike.
    times: dict[tuple[str, ...], list[tuple[float, float]]] = {command: [] for command in runs}
    for _ in range(args.repeat):
        for command, argv in runs.items():
            times[command].append(_timed(argv, env))
    wall = {command: statistics.median(t[0] for t in got) for command, got in times.items()}
    cpu = {command: statistics.median(t[1] for t in got) for command, got in times.items()}
    baseline = wall[()]
    print(f"{'command':<28} {'median':>8} {'minus python':>13} {'cpu':>7} {'target':>8}")
    print(f"{'python -c pass':<28} {baseline:>6.0f}ms {'':>13} {cpu[()]:>5.0f}ms")
    missed = 0
    typer_floor = ("import typer",)
    floor_name = "python -c 'import typer'"
    print(
        f"{floor_name:<28} {wall[typer_floor]:>6.0f}ms "
        f"{wall[typer_floor] - baseline:>+11.0f}ms {cpu[typer_floor]:>5.0f}ms"
    )
    for command in runs:
        if command in ((), typer_floor):
            continue
        ms = wall[command]
        target = TARGETS_MS.get(command[0], DEFAULT_TARGET_MS) if len(command) == 1 else 300.0
        verdict = "ok" if ms <= target else "SLOW"
        missed += verdict != "ok"
        name = "karma " + " ".join(command)
        print(
            f"{name:<28} {ms:>6.0f}ms {ms - baseline:>+11.0f}ms {cpu[command]:>5.0f}ms "
            f"{target:>6.0f}ms {verdict}"
        )
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
