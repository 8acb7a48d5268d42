"""The approval gate: a change to a critical path needs a human.

Critical paths are globs (CI workflows, migrations, auth modules, KARMA's own config,
dependency lockfiles). A match does not fail the gate: it is a `warning` whose findings
say which file needs a human and why, and the suite reports `needs_approval`, so a
build is not marked succeeded.
"""

from __future__ import annotations

import fnmatch
import time

from karma.gates.change import all_changed_paths
from karma.gates.interface import Finding, GateContext, GateResult, GateSettings


def matches(path: str, glob: str) -> bool:
    """fnmatch, where a leading `**/` also matches at the root (`**/migrations/**`)."""
    if fnmatch.fnmatch(path, glob):
        return True
    return glob.startswith("**/") and fnmatch.fnmatch(path, glob[3:])


class ApprovalGate:
    name = "approval"

    def run(self, ctx: GateContext, settings: GateSettings) -> GateResult:
        started = time.monotonic()
        globs = [*settings.get("paths", ()), *settings.get("extra_paths", ())]
        findings = []
        for path in all_changed_paths(ctx):
            hit = next((g for g in globs if matches(path, g)), None)
            if hit is not None:
                findings.append(
                    Finding(
                        "approval.critical-path",
                        "warning",
                        path,
                        0,
                        f"{path} is a critical path ({hit}): a human must approve this change",
                    )
                )
        summary = (
            f"{len(findings)} critical path(s) changed: needs approval"
            if findings
            else "no critical paths changed"
        )
        return GateResult(
            self.name,
            "warning" if findings else "passed",
            tuple(findings),
            time.monotonic() - started,
            summary,
            data={"needs_approval": bool(findings)},
        )
