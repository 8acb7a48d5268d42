"""The bench gate: a benchmark on base and head in the same place; a regression fails.

The command runs `repeat` times in the head tree and in a checkout of the base,
interleaved so drift hits both alike. Its score is the number on the last line of its
output (lower is better), or its wall time when it prints none; the medians are
compared, and head slower than base by more than `threshold_pct` fails.

Where a sandbox is given (always inside `karma build`: the head is model-written code),
base and head each run in their own sandbox, with the same image and limits, on a
throwaway copy of their tree: the head's code can change neither the tree later gates
read nor the base it is compared with. Only `karma gate` without `--sandbox`, on a
user's own tree, runs on the host.
"""

from __future__ import annotations

import os
import re
import signal
import statistics
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from karma.gates.change import base_worktree
from karma.gates.files import throwaway
from karma.gates.interface import Finding, GateContext, GateResult, GateSettings, GateUnavailable

if TYPE_CHECKING:
    from karma.sandbox.interface import Sandbox

NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


def score(output: str, wall_s: float) -> float:
    lines = output.strip().splitlines()
    found = NUMBER.findall(lines[-1]) if lines else []
    return float(found[-1]) if found else wall_s


class BenchGate:
    name = "bench"

    def run(self, ctx: GateContext, settings: GateSettings) -> GateResult:
        started = time.monotonic()
        command = str(settings.get("command", ""))
        if not command:
            return GateResult(
                self.name, "skipped", (), 0.0, "no benchmark configured (gates.bench.command)"
            )
        repeat = max(1, int(settings.get("repeat", 3)))
        threshold = float(settings.get("threshold_pct", 10.0))
        deadline = started + settings.timeout_s
        base_scores: list[float] = []
        head_scores: list[float] = []
        with base_worktree(ctx) as base_tree, _runner(ctx, base_tree) as once:
            for _ in range(repeat):
                base_scores.append(once(command, "base", deadline))
                head_scores.append(once(command, "head", deadline))
        base, head = statistics.median(base_scores), statistics.median(head_scores)
        change = (head - base) / base * 100 if base > 0 else 0.0
        data = {
            "base": base,
            "head": head,
            "change_pct": round(change, 2),
            "threshold_pct": threshold,
        }
        summary = f"median {head:.4g} vs base {base:.4g} ({change:+.1f}%, threshold {threshold:g}%)"
        if change > threshold:
            finding = Finding(
                "bench.regression",
                "error",
                "",
                0,
                f"benchmark regressed {change:.1f}% (> {threshold:g}%)",
            )
            return GateResult(
                self.name, "failed", (finding,), time.monotonic() - started, summary, data=data
            )
        return GateResult(self.name, "passed", (), time.monotonic() - started, summary, data=data)


Once = Callable[[str, str, float], float]


@contextmanager
def _runner(ctx: GateContext, base_tree: Path) -> Iterator[Once]:
    """Runs the command on "base" or "head": each in its own sandbox when there is one."""
    if ctx.start_sandbox is None or ctx.sandbox_image is None:
        trees = {"base": base_tree, "head": ctx.repo}
        yield lambda command, which, deadline: _on_host(command, trees[which], deadline)
        return
    from karma.sandbox import spec_from_config

    start, image = ctx.start_sandbox, ctx.sandbox_image
    with ExitStack() as stack:
        boxes: dict[str, Sandbox] = {}
        for which, tree in (("base", base_tree), ("head", ctx.repo)):
            copy = stack.enter_context(throwaway(tree))
            spec = spec_from_config(ctx.config, image=image, workspace=copy,
                                    run_id=ctx.run_id, task_id=f"gate-bench-{which}")  # fmt: skip
            boxes[which] = start(spec)
            stack.callback(boxes[which].close)

        def once(command: str, which: str, deadline: float) -> float:
            left = deadline - time.monotonic()
            if left <= 0:
                raise GateUnavailable("the benchmark did not finish within the gate's timeout")
            result = boxes[which].exec(command, timeout_s=left)
            if result.timed_out:
                raise GateUnavailable("the benchmark did not finish within the gate's timeout")
            if not result.ok:
                raise GateUnavailable(
                    f"the benchmark exited {result.exit_code} on {which}: "
                    f"{result.output.strip()[-200:]}"
                )
            return score(result.output, result.duration_s)

        yield once


def _on_host(command: str, tree: Path, deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise GateUnavailable("the benchmark did not finish within the gate's timeout")
    began = time.monotonic()
    proc = subprocess.Popen(  # noqa: S602 - the user's own configured benchmark, own tree
        command,
        shell=True,
        cwd=tree,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = proc.communicate(timeout=left)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise GateUnavailable("the benchmark did not finish within the gate's timeout") from None
    wall = time.monotonic() - began
    if proc.returncode != 0:
        raise GateUnavailable(
            f"the benchmark exited {proc.returncode} in {tree.name}: {output.strip()[-200:]}"
        )
    return score(output, wall)
