"""The bench gate: a benchmark on base and head in the same place; a regression fails.

The command runs `repeat` times in the head tree and in a `git worktree` of the base,
interleaved so drift hits both alike. Its score is the number on the last line of its
output (lower is better), or its wall time when it prints none; the medians are
compared, and head slower than base by more than `threshold_pct` fails.
"""

from __future__ import annotations

import os
import re
import signal
import statistics
import subprocess
import time
from pathlib import Path

from karma.gates.change import base_worktree
from karma.gates.interface import Finding, GateContext, GateResult, GateSettings, GateUnavailable

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
        with base_worktree(ctx) as base_tree:
            for _ in range(repeat):
                base_scores.append(self._once(command, base_tree, deadline))
                head_scores.append(self._once(command, ctx.repo, deadline))
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

    def _once(self, command: str, tree: Path, deadline: float) -> float:
        left = deadline - time.monotonic()
        if left <= 0:
            raise GateUnavailable("the benchmark did not finish within the gate's timeout")
        began = time.monotonic()
        proc = subprocess.Popen(  # noqa: S602 - the project's own configured benchmark
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
            raise GateUnavailable(
                "the benchmark did not finish within the gate's timeout"
            ) from None
        wall = time.monotonic() - began
        if proc.returncode != 0:
            raise GateUnavailable(
                f"the benchmark exited {proc.returncode} in {tree.name}: {output.strip()[-200:]}"
            )
        return score(output, wall)
