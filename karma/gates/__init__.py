"""The quality gates: `run_suite(ctx, suite)` and the types it speaks.

The engine calls `run_suite` on the integrated build; `karma gate` calls it on a working
tree. Gates are imported lazily by name, so importing this package loads no tool.
"""

from __future__ import annotations

from karma.gates.interface import Finding, GateContext, GateError, GateResult, GateSettings
from karma.gates.suite import GateOutcome, Suite, SuiteResult, gate_tree, load_suite, run_suite
from karma.text.redact import redact

__all__ = [
    "Finding",
    "GateContext",
    "GateError",
    "GateOutcome",
    "GateResult",
    "GateSettings",
    "Suite",
    "SuiteResult",
    "gate_tree",
    "load_suite",
    "redact",
    "run_suite",
]
