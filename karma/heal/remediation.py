"""Remediations: their risk tiers, the policy cascade, and what each one does.

A remediation is data in the recipes (which ones a pattern offers, in what order, with
what prior) and code here, in this one module: the tier each belongs to, the typed
`Remedy` the engine applies (a hint, multipliers, flags), and the few that need
commands in the sandbox (rerunning failed tests, regenerating a lockfile, reinstalling
dependencies) or an edit of the worktree (quarantining a flaky test).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal, assert_never

from karma import confine
from karma.config import HealConfig, TierPolicy
from karma.recipes import FailurePattern, RemediationName
from karma.sandbox.interface import ExecResult, Sandbox
from karma.sandbox.project import PREFIX, install_project
from karma.text import style as textstyle

RiskTier = Literal["immediate", "standard", "elevated", "critical"]
"""How much a remedy may change or hide, and so who must agree to it (not the model tier:
`karma.config.Tier` is small, medium or large)."""
TIER_ORDER: tuple[RiskTier, ...] = ("immediate", "standard", "elevated", "critical")


def tier_of(name: RemediationName) -> RiskTier:
    match name:
        case "retry_with_hint" | "rerun_failed_tests" | "fresh_sandbox":
            return "immediate"
        case (
            "raise_memory" | "raise_timeout" | "escalate_model" | "regenerate_lockfile"
            | "reinstall_dependencies"
        ):  # fmt: skip
            return "standard"
        case "quarantine_flaky_test":
            return "elevated"
        case "edit_ci_workflow" | "edit_auth" | "edit_migration" | "lower_gate":
            return "critical"
        case _:
            assert_never(name)


def policy_for(config: HealConfig, tier: RiskTier) -> TierPolicy:
    match tier:
        case "immediate":
            return config.immediate
        case "standard":
            return config.standard
        case "elevated":
            return config.elevated
        case "critical":
            return config.critical
        case _:
            assert_never(tier)


@dataclass(frozen=True)
class Remedy:
    """What the engine does before the next attempt."""

    name: RemediationName
    tier: RiskTier
    hint: str
    """Goes into the next attempt's prompt (every remedy carries the diagnosis)."""
    memory_factor: float = 1.0
    timeout_factor: float = 1.0
    escalate_model: bool = False
    rerun_failed_tests: bool = False
    regenerate_lockfile: bool = False
    reinstall_dependencies: bool = False
    quarantine_flaky_test: bool = False


def build_remedy(
    name: RemediationName, pattern: FailurePattern, diagnosis: str, config: HealConfig
) -> Remedy:
    tier = tier_of(name)
    hint = f"The previous attempt failed: {diagnosis}\nHint: {pattern.hint}"
    base = Remedy(name, tier, hint)  # an elevated one proceeds, a human is told (waiting.py)
    match name:
        case "retry_with_hint":
            return base
        case "rerun_failed_tests":
            return _with(base, rerun_failed_tests=True)
        case "fresh_sandbox":  # what every attempt gets: a new container
            return base
        case "raise_memory":
            return _with(base, memory_factor=config.memory_factor)
        case "raise_timeout":
            return _with(base, timeout_factor=config.timeout_factor)
        case "escalate_model":
            return _with(base, escalate_model=True)
        case "regenerate_lockfile":
            return _with(base, regenerate_lockfile=True)
        case "reinstall_dependencies":
            return _with(base, reinstall_dependencies=True)
        case "quarantine_flaky_test":
            return _with(base, quarantine_flaky_test=True)
        case "edit_ci_workflow" | "edit_auth" | "edit_migration" | "lower_gate":
            raise ValueError(f"{name} is critical: it is proposed to a human, never applied")
        case _:
            assert_never(name)


def _with(remedy: Remedy, **changes: object) -> Remedy:
    return replace(remedy, **changes)  # type: ignore[arg-type]


# -- rerun_failed_tests ------------------------------------------------------------------

_PYTEST_FAILED = re.compile(r"^(?:FAILED|ERROR) (\S+::\S+)", re.MULTILINE)
_GO_FAILED = re.compile(r"^\s*--- FAIL: (\w+)", re.MULTILINE)
_JEST_FAILED = re.compile(r"^FAIL (\S+\.(?:test|spec)\.[jt]sx?)", re.MULTILINE)


@dataclass(frozen=True)
class RerunPlan:
    runner: Literal["pytest", "go", "jest"]
    test_ids: tuple[str, ...]
    command: str


def rerun_plan(output: str) -> RerunPlan | None:
    """The command that reruns only the tests `output` says failed (pytest, go, jest)."""
    if ids := list(dict.fromkeys(_PYTEST_FAILED.findall(output))):
        return RerunPlan("pytest", tuple(ids), "python -m pytest -q -p no:randomly "
                         + " ".join(shlex.quote(i) for i in ids))  # fmt: skip
    if ids := list(dict.fromkeys(_GO_FAILED.findall(output))):
        pattern = "^(" + "|".join(ids) + ")$"
        return RerunPlan("go", tuple(ids), f"go test -count=1 -run {shlex.quote(pattern)} ./...")
    if ids := list(dict.fromkeys(_JEST_FAILED.findall(output))):
        return RerunPlan("jest", tuple(ids), "npx jest --ci " + " ".join(map(shlex.quote, ids)))
    return None


@dataclass(frozen=True)
class RerunOutcome:
    plan: RerunPlan | None
    runs: tuple[ExecResult, ...]
    passed_on: int | None
    """The rerun (1-based) that passed; None when none did."""

    @property
    def flaky(self) -> bool:
        """Failed, then passed on a rerun with no change: the test is flaky."""
        return self.passed_on is not None


def rerun_failed_tests(
    sandbox: Sandbox, output: str, *, reruns: int = 3, timeout_s: float = 600.0,
    workdir: str | None = None,
) -> RerunOutcome:  # fmt: skip
    """The failed tests of `output` run again, in `workdir` (the stack's folder; None:
    the sandbox's own), until one run passes or `reruns` runs failed."""
    plan = rerun_plan(output)
    if plan is None:
        return RerunOutcome(None, (), None)
    runs: list[ExecResult] = []
    for number in range(1, reruns + 1):
        result = sandbox.exec(plan.command, timeout_s=timeout_s, workdir=workdir)
        runs.append(result)
        if result.ok:
            return RerunOutcome(plan, tuple(runs), number)
    return RerunOutcome(plan, tuple(runs), None)


# -- lockfiles and dependencies -----------------------------------------------------------

# (lockfile, command that re-resolves it, command that reinstalls from it)
LOCKFILES: tuple[tuple[str, str, str], ...] = (
    ("poetry.lock", "poetry lock --no-interaction", "poetry install --no-interaction"),
    ("uv.lock", "uv lock", "uv sync"),
    ("package-lock.json", "npm install --package-lock-only --no-audit --no-fund", "npm ci"),
    ("yarn.lock", "yarn install --non-interactive", "yarn install --frozen-lockfile"),  # yarn 1
    ("pnpm-lock.yaml", "pnpm install --lockfile-only", "pnpm install --frozen-lockfile"),
    ("Cargo.lock", "cargo generate-lockfile", "cargo fetch"),
    ("go.sum", "go mod tidy", "go mod download"),
    ("requirements.lock", "pip-compile -o requirements.lock", "pip install -r requirements.lock"),
)


@dataclass(frozen=True)
class DependencyOutcome:
    """What a lockfile regeneration or a reinstall did; `ok` False counts as a failed attempt."""

    action: Literal["regenerate_lockfile", "reinstall_dependencies"]
    lockfile: str | None
    commands: tuple[str, ...]
    result: ExecResult | None

    @property
    def ok(self) -> bool:
        return self.result is not None and self.result.ok

    @property
    def detail(self) -> str:
        if self.lockfile is None:
            return "no known lockfile in the workspace"
        if self.result is None:
            return "nothing ran"
        state = "succeeded" if self.ok else f"failed (exit {self.result.exit_code})"
        return f"{' && '.join(self.commands)}: {state}"


def _lockfile(sandbox: Sandbox, workdir: str | None = None) -> tuple[str, str, str] | None:
    listing = sandbox.exec("ls -1a", timeout_s=30, workdir=workdir).output.split()
    return next((entry for entry in LOCKFILES if entry[0] in listing), None)


def regenerate_lockfile(
    sandbox: Sandbox, *, timeout_s: float = 600.0, workdir: str | None = None
) -> DependencyOutcome:
    """Remove the lockfile of `workdir` (the stack's folder; None: the workspace) and
    re-resolve it."""
    found = _lockfile(sandbox, workdir)
    if found is None:
        return DependencyOutcome("regenerate_lockfile", None, (), None)
    lockfile, relock, _ = found
    commands = (f"rm -f {lockfile}", relock)
    result = sandbox.exec(" && ".join(commands), timeout_s=timeout_s, workdir=workdir)
    return DependencyOutcome("regenerate_lockfile", lockfile, commands, result)


def reinstall_dependencies(
    sandbox: Sandbox, *, workdir: str = "/workspace", timeout_s: float = 600.0
) -> DependencyOutcome:
    """Reinstall the project and what it needs from what the image holds (its wheels):
    the sandbox has no network, so a lockfile's own install command cannot work here."""
    installed = install_project(sandbox, workdir=workdir, timeout_s=timeout_s, deps=True)
    if installed.result is None:
        return DependencyOutcome("reinstall_dependencies", None, (), None)
    # What ran, as a reader of the record needs it (the script after pip is KARMA's own).
    commands = (f"python -m pip install --no-index --no-build-isolation --prefix {PREFIX} -e .",)
    return DependencyOutcome("reinstall_dependencies", "pyproject.toml", commands, installed.result)


NEEDS_NETWORK: frozenset[RemediationName] = frozenset({"regenerate_lockfile"})
"""Re-resolving a lockfile asks a package index; sandboxes have no network."""


def unavailable(stack: str) -> frozenset[RemediationName]:
    """The remediations that cannot work in this stack's sandboxes: never offered there.
    Only the Python stack's image holds a wheelhouse to reinstall from."""
    if stack == "python":
        return NEEDS_NETWORK
    return NEEDS_NETWORK | {"reinstall_dependencies"}


# -- quarantine_flaky_test ---------------------------------------------------------------


@dataclass(frozen=True)
class QuarantineOutcome:
    test_id: str
    file: Path | None
    applied: bool
    annotation: str
    reason: str = ""
    """Why it was not applied, when it was not."""


MAX_QUARANTINE_BYTES = 2_000_000


def quarantine_test(workspace: Path, test_id: str, run_id: str) -> QuarantineOutcome:
    """Skip one pytest test with a marker naming the run that quarantined it.

    The test id comes from test output, which the code under test wrote: its path is
    opened beneath the worktree by `karma.confine` (no `..`, no absolute path, nothing in
    `.git`, no symlink at any component) or the quarantine is refused with a reason."""
    annotation = f"quarantined as flaky by karma run {run_id}"
    path_part, _, name_part = test_id.partition("::")
    name = name_part.rsplit("::", 1)[-1].split("[", 1)[0]

    def refused(reason: str, file: Path | None = None) -> QuarantineOutcome:
        return QuarantineOutcome(test_id, file, False, annotation, reason)

    if not re.fullmatch(r"\w+", name):
        return refused("no test function named")
    try:
        parts = confine.relative_parts(path_part)
        if not parts:
            return refused("no test file named")
        file = workspace.joinpath(*parts)
        with confine.opened(workspace) as root:
            found = confine.read_bytes(root, parts, MAX_QUARANTINE_BYTES + 1)
            if found.size > MAX_QUARANTINE_BYTES:
                return refused(f"{path_part}: too large to edit", file)
            text, style = textstyle.decode(found.data)
            definition = re.compile(rf"^([ \t]*)(?:async\s+)?def {name}\(", re.MULTILINE)
            hit = definition.search(text)
            if hit is None or annotation in text:
                why = "already quarantined" if hit else f"no test {name} in {path_part}"
                return refused(why, file)
            newline = "\r\n" if style.crlf else "\n"
            marker = f'{hit.group(1)}@pytest.mark.skip(reason="{annotation}"){newline}'
            text = text[: hit.start()] + marker + text[hit.start() :]
            if not re.search(r"^import pytest\r?$", text, re.MULTILINE):
                text = "import pytest" + newline + text
            confine.write_bytes(root, parts, textstyle.encode(text, style))
    except confine.PathRefused as exc:
        return refused(str(exc))
    except (OSError, UnicodeError) as exc:  # missing, unreadable: the remedy fails, recorded
        return refused(f"{path_part}: {exc.args[-1] if exc.args else exc}")
    return QuarantineOutcome(test_id, file, True, annotation)
