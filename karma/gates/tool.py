"""One way for a gate to run a host tool: with a timeout, and `GateUnavailable` when it cannot.

A tool that does not finish in time or does not start makes the gate *unavailable* (the
gate could not judge), never failed: `run_tool` turns both into `GateUnavailable` with a
message naming the tool. The exit code is the caller's to read.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

from karma.gates.interface import GateUnavailable


def run_tool(
    name: str, command: Sequence[str], *, cwd: Path, timeout_s: float
) -> subprocess.CompletedProcess[str]:
    """Run `command` in `cwd`, capturing text output; `GateUnavailable` on timeout or no start."""
    try:
        return subprocess.run(
            list(command), cwd=cwd, capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired:
        raise GateUnavailable(f"{name} did not finish within {timeout_s:.0f} s") from None
    except OSError as exc:
        raise GateUnavailable(f"{name} could not start: {exc}") from None
