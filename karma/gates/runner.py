"""Runs a suite: each gate in order, each bounded, one broken gate never hiding the others.

A gate that cannot run (`GateError`, or any `KarmaError` from the sandbox or the model
seam) becomes an `error` result with the reason; an error of a blocking gate fails the
suite: nothing is silently passed.
"""

from __future__ import annotations

import contextlib
import importlib
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from karma.errors import KarmaError, WorkspaceError
from karma.gates.interface import Gate, GateContext, GateResult, GateSettings
from karma.gates.secrets import redact
from karma.gates.suite import Suite, load_suite
from karma.hostgit import discover

if TYPE_CHECKING:
    from karma.config import KarmaConfig
    from karma.home import DataRoots
    from karma.models.interface import ModelClient
    from karma.recipes import Stack
    from karma.sandbox.interface import Sandbox, SandboxSpec

GATES: dict[str, str] = {
    "secrets": "karma.gates.secrets:SecretsGate",
    "sast": "karma.gates.sast:SastGate",
    "audit": "karma.gates.audit:AuditGate",
    "tests": "karma.gates.tests:TestsGate",
    "bench": "karma.gates.bench:BenchGate",
    "approval": "karma.gates.approval:ApprovalGate",
    "review": "karma.gates.review:ReviewGate",
}


def gate_named(name: str) -> Gate:
    module, _, cls = GATES[name].partition(":")
    gate: Gate = getattr(importlib.import_module(module), cls)()
    return gate


@dataclass(frozen=True)
class GateOutcome:
    result: GateResult
    blocking: bool

    @property
    def blocks(self) -> bool:
        return self.blocking and self.result.status in ("failed", "error")


@dataclass(frozen=True)
class SuiteResult:
    base: str
    head: str | None
    outcomes: tuple[GateOutcome, ...]

    @property
    def status(self) -> Literal["passed", "failed"]:
        return "failed" if any(o.blocks for o in self.outcomes) else "passed"

    @property
    def needs_approval(self) -> bool:
        return any(bool(o.result.data.get("needs_approval")) for o in self.outcomes)

    @property
    def blocking_failures(self) -> tuple[GateResult, ...]:
        return tuple(o.result for o in self.outcomes if o.blocks)

    def result(self, name: str) -> GateResult | None:
        return next((o.result for o in self.outcomes if o.result.name == name), None)

    def as_json(self) -> dict[str, Any]:
        """The public JSON contract of `karma gate --format json` (every text redacted)."""
        return {
            "status": self.status,
            "base": self.base,
            "needs_approval": self.needs_approval,
            "gates": [
                {
                    "name": o.result.name,
                    "status": o.result.status,
                    "blocking": o.blocking,
                    "duration_s": round(o.result.duration_s, 3),
                    **({"needs_approval": True} if o.result.data.get("needs_approval") else {}),
                    "summary": redact(o.result.summary),
                    "findings": [
                        {**f.as_json(), "message": redact(f.message), "new": f.new}
                        for f in o.result.findings
                    ],
                }
                for o in self.outcomes
            ],
        }


def run_gate(ctx: GateContext, settings: GateSettings) -> GateResult:
    started = time.monotonic()
    try:
        result = gate_named(settings.name).run(ctx, settings)
    except KarmaError as exc:
        reason = redact(str(exc))
        if exc.tip:
            reason += f" (tip: {exc.tip})"
        result = GateResult(settings.name, "error", (), time.monotonic() - started, reason)
    return replace(result, duration_s=time.monotonic() - started)


def run_suite(
    ctx: GateContext,
    suite: Suite,
    *,
    on_result: Callable[[GateResult, bool], None] | None = None,
) -> SuiteResult:
    """Run every gate of `suite` on `ctx`; each later gate sees the earlier results."""
    if ctx.git_dir is None and ctx.head is None:
        # The user's working tree: its git directory is read once, before any gate ran.
        with contextlib.suppress(WorkspaceError):
            ctx = replace(ctx, git_dir=discover(ctx.repo)[0])
    outcomes: list[GateOutcome] = []
    for settings in suite.gates:
        result = run_gate(replace(ctx, previous=tuple(o.result for o in outcomes)), settings)
        outcomes.append(GateOutcome(result, settings.blocking))
        if on_result is not None:
            on_result(result, settings.blocking)
    return SuiteResult(ctx.base, ctx.head, tuple(outcomes))


def gate_tree(
    repo: Path,
    base: str,
    config: KarmaConfig,
    *,
    data: DataRoots,
    stack: Stack | None,
    head: str | None = None,
    only: tuple[str, ...] = (),
    request: str = "",
    plan: str = "",
    start_sandbox: Callable[[SandboxSpec], Sandbox] | None = None,
    sandbox_image: str | None = None,
    reviewer: ModelClient | None = None,
    run_id: str = "gate",
    on_result: Callable[[GateResult, bool], None] | None = None,
    git_dir: Path | None = None,
) -> SuiteResult:
    """The configured suite (`gates.suite` + `gates.overrides`) on `repo` against `base`.

    What `karma gate` runs on a working tree (head None) and the engine on the integrated
    build worktree (head = its commit, with the request, plan, sandbox and reviewer).
    The suite, rules, rubric (`data`) and the stack come from trusted places the caller
    decided before anything ran: never from `repo`, which is the change under check.
    `git_dir`: the repository's git directory when `repo` is an export without `.git`.
    """
    suite = load_suite(config.gates.suite, roots=data, overrides=config.gates.overrides)
    if only:
        suite = suite.only(only)
    ctx = GateContext(
        repo=repo,
        base=base,
        config=config,
        head=head,
        stack=stack,
        data=data,
        start_sandbox=start_sandbox,
        sandbox_image=sandbox_image,
        reviewer=reviewer,
        request=request,
        plan=plan,
        run_id=run_id,
        git_dir=git_dir,
    )
    return run_suite(ctx, suite, on_result=on_result)
