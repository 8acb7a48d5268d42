"""One attempt's work, wherever it runs: install, remedy, agent, checks — in one sandbox.

`do_work` is the unit that the local executor runs in a worktree of the user's repository
and a Dask worker runs in a worktree of its own cache: it takes only what it is handed
(the brief, a model, how to start a sandbox on the worktree, the stack, the limits, how to stage the
change) and returns how the work ended (`WorkEnd`). It never classifies a failure, never
commits and never merges: those stay with the coordinator, which holds the learned
pattern table and the build branch.
"""

from __future__ import annotations

import os
import shlex
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Literal

from karma.agent import run_agent
from karma.config import KarmaConfig
from karma.conversation import Brief
from karma.errors import WorkspaceError
from karma.footprint import Footprint
from karma.heal import Evidence, Remedy
from karma.heal.evidence import Step
from karma.heal.remediation import regenerate_lockfile, reinstall_dependencies
from karma.layout import ROOT, in_folder
from karma.models.interface import AuthFailed, ModelClient, ProviderError, SpendLimitReached, Usage
from karma.recipes import Stack
from karma.sandbox.interface import ExecResult, Sandbox, SandboxError, SandboxUnavailable
from karma.sandbox.project import install_project
from karma.scheduler import Lookahead, ahead
from karma.testselect import MAX_FILES, in_tree
from karma.tools import Toolbox
from karma.workspace import Staged

WorkStatus = Literal["finished", "failed", "remedy_failed", "interrupted"]
OnStep = Callable[[int, str, dict[str, object], str, bool], None]


@dataclass(frozen=True)
class WorkEnd:
    """How an attempt's work ended, before the coordinator judges and integrates it."""

    status: WorkStatus
    detail: str = ""
    summary: str = ""
    """The model's own summary of a finished change."""
    evidence: Evidence | None = None
    """What failed (status `failed` or `remedy_failed`)."""
    changed: tuple[str, ...] = ()
    """The paths the change touches, as staged (status `finished`)."""
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0
    error: ProviderError | SandboxUnavailable | None = None
    """An error that stops the whole build (a bad key, a spend limit, the engine lost)."""
    ran_agent: bool = False
    """The model was asked (its usage is to be charged), even if for nothing."""
    checked_ahead: bool = False
    """The checks' outcomes are those of their run while the model thought (`checks.ahead`)."""


@dataclass(frozen=True)
class WorkLimits:
    """What the treatment makes of the configured limits for this attempt."""

    timeout_s: float
    remedy: Remedy | None = None
    select_tests: bool = False
    """Run the tests the change reaches, not the whole suite (`checks.full_suite_max_s`)."""


def do_work(
    brief: Brief,
    model: ModelClient,
    start: Callable[[], Sandbox],
    worktree: Path,
    *,
    stage: Callable[[], Staged],
    stack: Stack,
    config: KarmaConfig,
    limits: WorkLimits,
    footprint: Footprint,
    stop: threading.Event,
    on_step: OnStep,
    folder: PurePosixPath = ROOT,
) -> WorkEnd:
    """Start the sandbox (`start`) and install the project, apply the remedy, run the
    agent, stage and check its change; `folder`: where the stack is placed
    (karma/layout.py): the project installed and checked there.

    The sandbox starts and the project installs while the model thinks of its first
    reply (`karma.scheduler.ahead`): no tool runs before both are done, and a sandbox
    that does not get ready ends the attempt as it would have before the model was asked,
    that one reply charged. A remedy that fixes the sandbox runs first, so a remedy that
    fails costs no reply."""
    timeout = limits.timeout_s
    workdir = in_folder(config.sandbox.workdir, folder)

    def prepare() -> Sandbox | WorkEnd:
        return _prepare(start, limits.remedy, workdir, timeout, stop)

    def work(prepared: Callable[[], Sandbox | WorkEnd]) -> WorkEnd:
        return _agent_work(brief, model, prepared, worktree, stage=stage, stack=stack,
                           config=config, limits=limits, footprint=footprint, stop=stop,
                           on_step=on_step, folder=folder)  # fmt: skip

    if _fixes_sandbox(limits.remedy):
        first = prepare()
        return first if isinstance(first, WorkEnd) else work(lambda: first)
    with ahead(prepare) as prepared:
        return work(prepared)


def _fixes_sandbox(remedy: Remedy | None) -> bool:
    return remedy is not None and (remedy.regenerate_lockfile or remedy.reinstall_dependencies)


def _prepare(start: Callable[[], Sandbox], remedy: Remedy | None, workdir: str,
             timeout: float, stop: threading.Event) -> Sandbox | WorkEnd:  # fmt: skip
    """The started sandbox with the project installed (and the remedy applied), or how
    the attempt ends when it cannot be: a failed install or remedy, the engine lost
    (`error`: it stops the build), another sandbox error (a failed attempt)."""
    try:
        sandbox = start()
        installed = install_project(sandbox, workdir=workdir, timeout_s=timeout)
        if installed.result is not None and not installed.ok:
            evidence = Evidence.from_exec(installed.result, step="install")
            return WorkEnd("failed", installed.detail, evidence=evidence)
        if remedy is not None and _fixes_sandbox(remedy):
            if remedy.regenerate_lockfile:
                fix = regenerate_lockfile(sandbox, timeout_s=timeout, workdir=workdir)
            else:
                fix = reinstall_dependencies(sandbox, workdir=workdir, timeout_s=timeout)
            if fix.result is not None and not fix.ok:
                evidence = Evidence.from_exec(fix.result, step="install")
                return WorkEnd("remedy_failed", f"{fix.action} failed: {fix.detail}",
                               evidence=evidence)  # fmt: skip
    except SandboxUnavailable as exc:
        return WorkEnd("interrupted", str(exc), error=exc)
    except SandboxError as exc:
        if stop.is_set():
            return WorkEnd("interrupted", "the run was interrupted")
        evidence = Evidence.from_log(str(exc), step="agent", command="sandbox")
        return WorkEnd("failed", str(exc), evidence=evidence)
    return sandbox


CHANGING = frozenset({"write_file", "edit_file", "run"})
"""The tools whose call may change the worktree, or the sandbox the checks run in."""


class _Pace:
    """Whether a run of the checks ahead is likely to end before the model's reply: the
    checks' last run took no longer than its last reply (the first run is tried). A run
    still under way when the reply comes shares the sandbox with the reply's tools, so a
    suite slower than the model is not run ahead."""

    def __init__(self) -> None:
        self._asked: float | None = None
        self._reply_s: float | None = None
        self._check_s: float | None = None

    def asked(self) -> None:
        self._asked = time.monotonic()

    def replied(self) -> None:
        if self._asked is not None:
            self._reply_s, self._asked = time.monotonic() - self._asked, None

    def checked(self, seconds: float) -> None:
        self._check_s = seconds

    def ahead(self) -> bool:
        return self._check_s is None or self._reply_s is None or self._check_s <= self._reply_s


@dataclass(frozen=True)
class _Checked:
    """The checks' outcomes on a staged tree."""

    staged: Staged
    outcomes: list[tuple[Step, ExecResult]]


def _agent_work(
    brief: Brief,
    model: ModelClient,
    prepared: Callable[[], Sandbox | WorkEnd],
    worktree: Path,
    *,
    stage: Callable[[], Staged],
    stack: Stack,
    config: KarmaConfig,
    limits: WorkLimits,
    footprint: Footprint,
    stop: threading.Event,
    on_step: OnStep,
    folder: PurePosixPath,
) -> WorkEnd:
    """The agent, then the staging and the checks of its change, in the sandbox that
    `prepared` waits for. With `checks.ahead`, the checks also run while the model
    thinks of each reply after one that may have changed something (`Lookahead`), once
    per staged tree: at `finish`, a run on the tree then staged (the same paths, the same
    tree id: contents, not the tools' say-so, so a change a background process made is
    caught) is their result."""
    timeout = limits.timeout_s
    changes = 0  # calls of a CHANGING tool so far: the state a run ahead is for
    last: _Checked | None = None  # the latest run ahead (its thread alone sets it)
    pace = _Pace()

    def sandbox() -> Sandbox:
        ready = prepared()
        assert not isinstance(ready, WorkEnd), "a tool ran in a sandbox that is not ready"
        return ready

    def unready() -> str | None:
        ready = prepared()
        return ready.detail or ready.status if isinstance(ready, WorkEnd) else None

    def stepped(step: int, tool: str, args: dict[str, object], output: str, error: bool) -> None:
        nonlocal changes
        pace.replied()
        if tool in CHANGING:
            changes += 1
        on_step(step, tool, args, output, error)

    def check(staged: Staged) -> _Checked:
        began = time.monotonic()
        outcomes = run_checks(stack, worktree, sandbox(), list(staged.paths), timeout,
                              select=limits.select_tests, folder=folder,
                              workdir=config.sandbox.workdir)  # fmt: skip
        pace.checked(time.monotonic() - began)
        return _Checked(staged, outcomes)

    def check_ahead() -> _Checked | None:
        nonlocal last
        if footprint.excess():
            return None
        try:
            staged = stage()
            if last is None or last.staged != staged:  # a `run` that changed no file: it stands
                last = check(staged)
            return last
        except (WorkspaceError, SandboxError):
            return None  # the checks after `finish` meet it again, and end the attempt

    toolbox = Toolbox(
        worktree,
        lambda cmd, left: sandbox().exec(cmd, timeout_s=min(timeout, left)),
        config.agent.output_chars,
        footprint=footprint,
    )
    with Lookahead[_Checked | None]() as lookahead:

        def thinking() -> None:
            if config.checks.ahead and changes and pace.ahead() and unready() is None:
                lookahead.offer(changes, check_ahead)
            pace.asked()

        result = run_agent(brief, model, toolbox, config.agent, stop=stop, on_step=stepped,
                           ready=unready, thinking=thinking)  # fmt: skip
        ahead = lookahead.settle()
    spent = WorkEnd("finished", usage=result.usage, cost_usd=result.cost_usd, ran_agent=True)
    if isinstance(result.error, AuthFailed | SpendLimitReached):  # no task can succeed now
        return replace(spent, status="interrupted", detail=result.detail, error=result.error)
    ready = prepared()
    if isinstance(ready, WorkEnd):  # the sandbox never got ready: the attempt ends as it did
        return replace(ready, usage=spent.usage, cost_usd=spent.cost_usd, ran_agent=True)
    if result.status == "interrupted" or stop.is_set():
        return replace(spent, status="interrupted", detail=result.detail or "interrupted")
    if result.status != "finished":
        evidence = Evidence.from_log(result.detail, step="agent", command=f"agent {result.status}")
        return replace(spent, status="failed", detail=f"agent {result.status}: {result.detail}",
                       evidence=evidence)  # fmt: skip
    if excess := footprint.excess():
        evidence = Evidence.from_log(excess, step="agent", command="worktree size")
        return replace(spent, status="failed", detail=excess, evidence=evidence)
    try:
        staged = stage()
    except WorkspaceError as exc:
        detail, evidence = staging_failure(exc)
        return replace(spent, status="failed", detail=detail, evidence=evidence)
    checked = ahead if ahead is not None and ahead.staged == staged else check(staged)
    spent = replace(spent, checked_ahead=checked is ahead)
    for step, outcome in checked.outcomes:
        if not outcome.ok:
            detail = f"{step} check failed (exit {outcome.exit_code}): {outcome.command}"
            evidence = Evidence.from_exec(outcome, step=step)
            return replace(spent, status="failed", detail=detail, evidence=evidence)
    return replace(spent, summary=result.summary, changed=staged.paths)


def _relative(path: str, folder: PurePosixPath) -> str | None:
    pure = PurePosixPath(path)
    return pure.relative_to(folder).as_posix() if folder in pure.parents else None


def staging_failure(exc: WorkspaceError) -> tuple[str, Evidence]:
    """The worktree could not be staged (a nested repository, a git failure): the reason,
    which the next attempt's model is told, and its evidence."""
    detail = f"{exc} (tip: {exc.tip})" if exc.tip else str(exc)
    return detail, Evidence.from_log(detail, step="build", command="git add")


def reached_tests(worktree: Path, changed: list[str]) -> tuple[str, ...] | None:
    """The test files the change reaches (`karma.testselect`), read from the worktree
    without following a symlink; None: the whole suite (a conftest or config changed,
    or too many files to read)."""
    paths: list[str] = []
    for folder, dirs, files in os.walk(worktree):  # never into a symlinked folder
        dirs[:] = [d for d in dirs if not d.startswith(".") and d != "__pycache__"]
        rel = Path(folder).relative_to(worktree)
        paths += [(rel / f).as_posix() for f in files if f.endswith(".py")]
        if len(paths) > MAX_FILES:
            return None
    return in_tree(worktree, changed, paths)


def _plain(worktree: Path, folder: PurePosixPath) -> bool:
    """Whether `folder` is a directory of `worktree` reached through no symlink (the
    model may have replaced it with one: the host then reads nothing through it)."""
    current = worktree
    for part in folder.parts:
        current = current / part
        if current.is_symlink() or not current.is_dir():
            return False
    return True


def run_checks(
    stack: Stack,
    worktree: Path,
    sandbox: Sandbox,
    changed: list[str],
    timeout: float,
    *,
    select: bool = False,
    folder: PurePosixPath = ROOT,
    workdir: str | None = None,
) -> list[tuple[Step, ExecResult]]:
    """The stack's checks on what the task changed; stops at the first failure. `select`:
    a `{tests}` check runs the tests the change reaches rather than the whole suite, and
    none when it reaches none (the tests gate runs the whole suite on the result).
    `folder`: where the stack is placed; the checks run there (`workdir` being the
    workspace's path in the sandbox), over the changed files inside it alone."""
    if folder != ROOT:
        changed = [rel for p in changed if (rel := _relative(p, folder)) is not None]
        plain = _plain(worktree, folder)
        worktree = worktree / folder
        select = select and plain
    else:
        plain = True
    where = in_folder(workdir, folder) if workdir is not None else None
    sources = [p for p in changed if stack.is_source(p) and (not plain or (worktree / p).is_file())]
    tests = [p for p in sources if stack.is_test(p)]
    reached = reached_tests(worktree, changed) if select else None
    done: list[tuple[Step, ExecResult]] = []
    for check in stack.checks:
        if check.when == "files" and not sources:
            continue
        selected = tests if reached is None else reached
        if "{tests}" in check.command and reached is not None and not reached:
            continue  # no test reaches the change
        if "{tests}" in check.command and not selected:
            command = stack.test_command
        else:
            command = check.command.format(
                files=" ".join(map(shlex.quote, sources)),
                tests=" ".join(map(shlex.quote, selected)),
            )
        outcome = sandbox.exec(command, timeout_s=timeout, workdir=where)
        done.append((check.step, outcome))
        if not outcome.ok:
            break
    return done
