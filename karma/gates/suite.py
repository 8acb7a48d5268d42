"""Gate suites: loaded from `quality_gates/` (the one loader of suites, semgrep rules and
the review rubric), and run — its gates in waves, each bounded, one broken gate never
hiding the others.

A suite is a TOML file (`quality_gates/<name>.toml`): an `order` and one table per gate.
The built-in `default.toml` is also the schema: a gate accepts `enabled`, `blocking`,
`timeout_s` and exactly the keys `default.toml` gives it, so a typo in a project's
`gates.overrides` fails loudly and names the key. Suites, rules and the rubric come from
the command's trusted `DataRoots` (karma/home.py), never from the tree under check.

The gates that do not depend on each other run at once (up to one per core, through
`karma.scheduler.run_each`); what a gate needs before it is data here, not a rule in
the gate: a gate that may lend the tree to a sandbox (`tests`, `audit`, `bench` when a
sandbox is given) runs alone, since the tree is chowned to the sandbox user meanwhile and
git on the host refuses it; `bench` measures time, so it runs alone too; `approval` and
`review` read the other gates' results (`ctx.previous`), so they run last, one after the
other, in the suite's order. `on_start` fires as a gate starts and `on_result` as it finishes,
both in the caller's thread (finish order may differ from the suite's when gates run
at once); the `SuiteResult` keeps the suite's order.

A gate that cannot run (`GateError`, or any `KarmaError` from the sandbox or the model
seam) becomes an `error` result with the reason; an error of a blocking gate fails the
suite: nothing is silently passed.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from karma.errors import ConfigError, KarmaError, WorkspaceError
from karma.gates.interface import Gate, GateContext, GateResult, GateSettings
from karma.home import DataRoots, builtin_dir
from karma.hostgit import discover
from karma.scheduler import run_each
from karma.text.redact import redact
from karma.tomlfile import read_toml

COMMON_KEYS = frozenset({"enabled", "blocking", "timeout_s"})
KNOWN_GATES = ("secrets", "sast", "audit", "tests", "bench", "approval", "review")


@dataclass(frozen=True)
class Suite:
    name: str
    gates: tuple[GateSettings, ...]
    """Enabled gates, in order."""

    def only(self, names: tuple[str, ...]) -> Suite:
        unknown = [name for name in names if name not in KNOWN_GATES]
        if unknown:
            raise ConfigError(
                f"unknown gate {unknown[0]!r}", tip=f"gates are: {', '.join(KNOWN_GATES)}"
            )
        return Suite(self.name, tuple(g for g in self.gates if g.name in names))

    def settings(self, name: str) -> GateSettings | None:
        return next((g for g in self.gates if g.name == name), None)


def _find(roots: DataRoots | None, relative: str) -> Path:
    """`relative` in the most specific quality_gates/ that has it (a project may override
    one suite or the rubric without copying the whole folder)."""
    return (roots or DataRoots.trusted()).path("quality_gates", relative)


def semgrep_rules_dir(roots: DataRoots | None = None) -> Path:
    return _find(roots, "semgrep")


def review_rubric(roots: DataRoots | None = None) -> str:
    return _find(roots, "review/rubric.md").read_text(encoding="utf-8")


def _schema() -> dict[str, frozenset[str]]:
    data = read_toml(builtin_dir("quality_gates") / "default.toml")
    return {name: frozenset(table) | COMMON_KEYS for name, table in data["gates"].items()}


def _check_keys(where: str, gate: str, table: Mapping[str, Any], schema: Mapping[str, Any]) -> None:
    if gate not in schema:
        raise ConfigError(f"{where}: unknown gate {gate!r}", tip=f"gates are: {', '.join(schema)}")
    for key in table:
        if key not in schema[gate]:
            raise ConfigError(
                f"{where}: gates.{gate}.{key}: unknown key",
                tip=f"{gate} accepts: {', '.join(sorted(schema[gate]))}",
            )


def load_suite(
    name: str = "default",
    *,
    roots: DataRoots | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> Suite:
    """The suite `name` with the config's `gates.overrides` applied on top."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name) or ".." in name:
        raise ConfigError(f"gates.suite: {name!r} is not a suite name")
    path = _find(roots, f"{name}.toml")
    if not path.is_file():
        raise ConfigError(f"no gate suite {name!r} ({path} does not exist)")
    data = read_toml(path)
    schema = _schema()
    tables: dict[str, dict[str, Any]] = {}
    for gate, table in data.get("gates", {}).items():
        _check_keys(str(path), gate, table, schema)
        tables[gate] = dict(table)
    for gate, table in (overrides or {}).items():
        _check_keys("gates.overrides", gate, table, schema)
        tables[gate] = {**tables.get(gate, {}), **table}
    order = data.get("order", list(tables))
    for gate in order:
        if gate not in tables:
            raise ConfigError(f"{path}: order names {gate!r}, which has no [gates.{gate}] table")
    gates: list[GateSettings] = []
    for gate in order:
        table = tables[gate]
        if not table.get("enabled", True):
            continue
        options = {k: v for k, v in table.items() if k not in COMMON_KEYS}
        try:
            timeout = float(table.get("timeout_s", 300.0))
        except (TypeError, ValueError):
            raise ConfigError(f"gates.{gate}.timeout_s: not a number") from None
        gates.append(GateSettings(gate, bool(table.get("blocking", True)), timeout, options))
    return Suite(name, tuple(gates))


if TYPE_CHECKING:
    from karma.config import KarmaConfig
    from karma.home import DataRoots
    from karma.layout import StackLayout
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


ALONE = frozenset({"bench"})
"""Gates that measure time: nothing else runs beside them."""
LAST = frozenset({"approval", "review"})
"""Gates that read the others' results: they run after every other gate, in order."""
PER_STACK = frozenset({"tests", "audit"})
"""Gates that run once per stack of a mixed repository (karma/layout.py), each in its
stack's folder and image: the first stack's result keeps the gate's name, each other's
is `<gate>:<folder>` (`tests:web`, `audit:web`). SAST, secrets and the rest read the
whole tree once."""
SLOW_FIRST = ("tests", "audit")
"""Gates that start a sandbox (given one): the slowest of a wave, started first so the
quick ones fill the other cores beside them. Each gets its own copy of the tree (or an
empty folder), so the tree the others read never changes hands."""


def waves(suite: Suite, *, sandboxed: bool) -> list[tuple[GateSettings, ...]]:
    """The suite's gates in the order they can run: each wave after the one before, a
    wave's gates in the order they start."""
    first = SLOW_FIRST if sandboxed else ()
    free = [s for s in suite.gates if s.name not in ALONE | LAST]
    free.sort(key=lambda s: first.index(kind) if (kind := gate_kind(s.name)) in first
              else len(first))  # fmt: skip
    alone = [(s,) for s in suite.gates if s.name in ALONE - LAST]
    last = [(s,) for s in suite.gates if s.name in LAST]
    return [wave for wave in (tuple(free), *alone, *last) if wave]


def gate_kind(name: str) -> str:
    """The gate a suite entry runs: `tests` for `tests:web`."""
    return name.partition(":")[0]


def gate_named(name: str) -> Gate:
    module, _, cls = GATES[gate_kind(name)].partition(":")
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
                    **(
                        {"stack": o.result.data["stack"], "folder": o.result.data["folder"]}
                        if "folder" in o.result.data
                        else {}
                    ),
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
    if ctx.layout is not None and ctx.layout.mixed and gate_kind(settings.name) in PER_STACK:
        placed = {"stack": ctx.stack.name if ctx.stack else None, "folder": ctx.folder}
        result = replace(result, name=settings.name, data={**result.data, **placed})
    return replace(result, duration_s=time.monotonic() - started)


def per_stack(suite: Suite, ctx: GateContext) -> tuple[Suite, dict[str, GateContext]]:
    """The suite with each `PER_STACK` gate once per stack of a mixed repository, and
    the context of each such entry (its stack, folder and image)."""
    layout = ctx.layout
    if layout is None or not layout.mixed:
        return suite, {}
    gates: list[GateSettings] = []
    contexts: dict[str, GateContext] = {}
    for settings in suite.gates:
        gates.append(settings)
        if settings.name not in PER_STACK:
            continue
        for index, placed in enumerate(layout.placed):
            name = settings.name if index == 0 else f"{settings.name}:{placed.label}"
            if index:
                gates.append(replace(settings, name=name))
            contexts[name] = replace(ctx, stack=placed.stack, folder=placed.label,
                                     sandbox_image=placed.image or ctx.sandbox_image)  # fmt: skip
    return Suite(suite.name, tuple(gates)), contexts


def run_suite(
    ctx: GateContext,
    suite: Suite,
    *,
    on_result: Callable[[GateResult, bool], None] | None = None,
    on_start: Callable[[GateSettings], None] | None = None,
    jobs: int | None = None,
) -> SuiteResult:
    """Run every gate of `suite` on `ctx`, wave by wave (`waves`); a gate of a later wave
    sees the results of the earlier ones. `jobs` bounds the gates run at once (default:
    the machine's cores; 1 runs them one by one in the suite's order)."""
    if ctx.git_dir is None and ctx.head is None:
        # The user's working tree: its git directory is read once, before any gate ran.
        with contextlib.suppress(WorkspaceError):
            ctx = replace(ctx, git_dir=discover(ctx.repo)[0])
    limit = jobs if jobs is not None else os.cpu_count() or 1
    suite, contexts = per_stack(suite, ctx)
    done: dict[str, GateResult] = {}

    def finished(settings: GateSettings, result: GateResult) -> None:
        if on_result is not None:
            on_result(result, settings.blocking)

    for wave in waves(suite, sandboxed=ctx.start_sandbox is not None):
        previous = tuple(done.values())

        def run(settings: GateSettings, previous: tuple[GateResult, ...] = previous) -> GateResult:
            return run_gate(replace(contexts.get(settings.name, ctx), previous=previous), settings)

        results = run_each(
            wave,
            run,
            jobs=min(limit, len(wave)),
            on_start=on_start or (lambda _settings: None),
            on_done=finished,
        )
        done.update((s.name, r) for s, r in zip(wave, results, strict=True))
    outcomes = tuple(GateOutcome(done[s.name], s.blocking) for s in suite.gates)
    return SuiteResult(ctx.base, ctx.head, outcomes)


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
    on_start: Callable[[GateSettings], None] | None = None,
    layout: StackLayout | None = None,
    suite: Suite | None = None,
) -> SuiteResult:
    """The configured suite (`gates.suite` + `gates.overrides`) on `repo` against `base`.

    What `karma gate` runs on a working tree (head None) and the engine on the integrated
    build worktree (head = its commit, with the request, plan, sandbox and reviewer).
    The suite, rules, rubric (`data`) and the stack come from trusted places the caller
    decided before anything ran: never from `repo`, which is the change under check.
    `git_dir`: the repository's git directory when `repo` is an export without `.git`.
    `layout`: the stacks the base commit places, with their images (the tests gate runs
    once per stack of a mixed repository: `PER_STACK`); None: `stack` alone. `suite`: that
    configured suite when the caller has loaded it already (the engine, to know whether
    it reviews); None: loaded here.
    """
    if suite is None:
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
        layout=layout,
    )
    return run_suite(ctx, suite, on_result=on_result, on_start=on_start)
