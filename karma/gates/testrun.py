"""Running the test command for the tests gate: in a sandbox, or on the host.

A sandbox gets a throwaway copy of the tree (`files.throwaway`), never the tree itself,
so code under test cannot change what later gates or the host's git read; the project is
installed in it first (`karma.sandbox.project`). Several steps (a collection, then the
run) share one sandbox. On the host each step is its own process group with an
allowlisted environment, killed whole at the timeout.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from karma.gates.files import throwaway
from karma.gates.interface import GateContext, GateSettings, GateUnavailable
from karma.gates.isolation import Invocation, host_env
from karma.gates.jestjson import as_junit, is_jest_json

# Inside the sandbox, /tmp is its own private tmpfs (SandboxSpec.tmpfs_mb).
SANDBOX_JUNIT = "/tmp/junit.xml"  # noqa: S108
SANDBOX_CONFIG = "/tmp/karma-pytest"  # noqa: S108
COLLECT = ("--collect-only", "--verbosity=-1")
"""One node id a line, whatever `-q` the base's `addopts` holds (`--verbosity` sets it)."""


@dataclass(frozen=True)
class Run:
    exit_code: int
    output: str
    timed_out: bool
    junit: Path | None


@dataclass(frozen=True)
class Step:
    """One command in the tree: the test command with `extra` arguments and a report, or
    `command` instead (a listing of the suite that the gate builds)."""

    extra: tuple[str, ...] = ()
    junit: bool = False
    command: str | None = None


def sandboxed(ctx: GateContext, settings: GateSettings) -> bool:
    where = str(settings.get("where", "auto"))
    if where == "sandbox" and (ctx.start_sandbox is None or ctx.sandbox_image is None):
        raise GateUnavailable("gates.tests.where is 'sandbox' but no sandbox is available")
    return where == "sandbox" or (
        where == "auto" and ctx.start_sandbox is not None and ctx.sandbox_image is not None
    )


def run_steps(
    ctx: GateContext,
    settings: GateSettings,
    tree: Path,
    invocation: Invocation,
    which: str,
    steps: tuple[Step, ...],
) -> list[Run]:
    """Each step's run in `tree` (`which`: "head" runs with hooked files reverted)."""
    scratch = invocation.scratch / which
    scratch.mkdir()
    if sandboxed(ctx, settings):
        return _in_sandbox(ctx, settings, tree, invocation, which, steps)
    if invocation.reverted and which == "head":
        with throwaway(tree) as copy:
            invocation.revert(copy)
            return [_on_host(ctx, settings, _folder(copy, ctx), invocation, scratch, i, s)
                    for i, s in enumerate(steps)]  # fmt: skip
    return [_on_host(ctx, settings, _folder(tree, ctx), invocation, scratch, i, s)
            for i, s in enumerate(steps)]  # fmt: skip


def _folder(tree: Path, ctx: GateContext) -> Path:
    """Where the stack of `ctx` is placed in `tree` (a mixed repository's), through no
    symlink: a folder the change made a link refuses the gate."""
    current = tree
    for part in PurePosixPath(ctx.folder).parts:
        current = current / part
        if current.is_symlink() or not current.is_dir():
            raise GateUnavailable(f"the stack folder {ctx.folder} is not a plain directory")
    return current


def _on_host(
    ctx: GateContext,
    settings: GateSettings,
    tree: Path,
    invocation: Invocation,
    scratch: Path,
    index: int,
    step: Step,
) -> Run:
    folder = scratch / str(index)
    folder.mkdir()
    report = folder / "junit.xml"
    home = folder / "home"
    home.mkdir()
    text = step.command or invocation.shell(
        rootdir=str(tree),
        config_file=str(invocation.config_file(folder / "config")) if invocation.parsed else "",
        junit=str(report) if step.junit else None,
        extra=step.extra,
        sandboxed=False,
    )
    try:
        proc = subprocess.Popen(  # noqa: S602 - the project's own configured test command
            text,
            shell=True,
            cwd=tree,
            env=host_env(ctx.config, home),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
    except OSError as exc:
        raise GateUnavailable(f"cannot start the test command: {exc}") from None
    try:
        output, _ = proc.communicate(timeout=settings.timeout_s)
    except subprocess.TimeoutExpired:
        # The whole process group: a hanging suite often has children.
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        return Run(-9, output, True, None)
    return Run(proc.returncode, output, False, _report(report, str(tree)))


def _report(path: Path, root: str) -> Path | None:
    """The run's JUnit report, if it wrote one (jest's JSON results made JUnit first)."""
    if not path.is_file() or path.is_symlink():
        return None
    if is_jest_json(path):
        as_junit(path, root)
    return path


def _in_sandbox(
    ctx: GateContext,
    settings: GateSettings,
    tree: Path,
    invocation: Invocation,
    which: str,
    steps: tuple[Step, ...],
) -> list[Run]:
    from karma.layout import in_folder
    from karma.sandbox import spec_from_config
    from karma.sandbox.interface import SandboxError
    from karma.sandbox.project import install_project

    assert ctx.start_sandbox is not None and ctx.sandbox_image is not None
    scratch = invocation.scratch / which
    runs: list[Run] = []
    with throwaway(tree) as copy:
        if which == "head":
            invocation.revert(copy)
        spec = spec_from_config(
            ctx.config, image=ctx.sandbox_image, workspace=copy, run_id=ctx.run_id,
            task_id="gate-tests",
        )  # fmt: skip
        _folder(copy, ctx)
        workdir = in_folder(spec.workdir, PurePosixPath(ctx.folder))
        box = ctx.start_sandbox(spec)
        try:
            installed = install_project(box, workdir=workdir, timeout_s=settings.timeout_s)
            if installed.result is not None and not installed.ok:
                failed = installed.result
                output = f"{installed.detail}\n{failed.output}"
                return [Run(failed.exit_code or 1, output, failed.timed_out, None)] * len(steps)
            if invocation.parsed is not None:
                box.copy_in(invocation.config_file(scratch / "config").parent, SANDBOX_CONFIG)
            for index, step in enumerate(steps):
                report = scratch / f"junit-{index}.xml"
                text = step.command or invocation.shell(
                    rootdir=workdir,
                    config_file=f"{SANDBOX_CONFIG}/{invocation.config_name}",
                    junit=SANDBOX_JUNIT if step.junit else None,
                    extra=step.extra,
                    sandboxed=True,
                    installed=installed.paths,
                )
                result = box.exec(text, timeout_s=settings.timeout_s, workdir=workdir)
                if step.junit and not result.timed_out:
                    # No report (or a broken archive): the run is judged by its exit code.
                    with contextlib.suppress(OSError, SandboxError, tarfile.TarError):
                        box.copy_out(SANDBOX_JUNIT, report)
                junit = _report(report, workdir)
                runs.append(Run(result.exit_code, result.output, result.timed_out, junit))
        finally:
            box.close()
    return runs
