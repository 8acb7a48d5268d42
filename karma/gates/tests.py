"""The tests gate: the stack's test command with JUnit XML, and test integrity.

The suite runs in a sandbox when the context gives one (`where = "auto"`), else on the
host (a CI job checking a human's change, with an allowlisted environment). A sandbox
gets a throwaway copy of the tree (`files.throwaway`), never the tree itself, so code
under test cannot change what later gates or the host's git read. A pytest command gets
`--junitxml`, parsed into counts and one finding per failing test.

Integrity (the change under check must not be able to talk the gate into passing):
pytest runs isolated, with the base's configuration (`isolation`); the number of tests
must not drop below the base's (collected in a checkout of the base); and the change may
not add skip/xfail markers or outcome-changing hooks (`tamper`), unless the suite
approves skips (`allow_new_skips`; hooks are never approved).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import tarfile
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, replace
from pathlib import Path

from karma.gates.change import base_worktree
from karma.gates.files import throwaway
from karma.gates.interface import (
    Finding,
    GateContext,
    GateResult,
    GateSettings,
    GateUnavailable,
    Status,
)
from karma.gates.isolation import Invocation, base_config, host_env, parse_pytest
from karma.gates.secrets import redact
from karma.gates.tamper import tampering

COLLECTED = re.compile(r"(\d+) tests? collected|collected (\d+) items?")
PYTEST_NO_TESTS = 5
# Inside the sandbox, /tmp is its own private tmpfs (SandboxSpec.tmpfs_mb).
SANDBOX_JUNIT = "/tmp/junit.xml"  # noqa: S108
SANDBOX_CONFIG = "/tmp/karma-pytest"  # noqa: S108
PER_FILE = re.compile(r"^\S+\.py: (\d+)$", re.MULTILINE)


@dataclass(frozen=True)
class Run:
    exit_code: int
    output: str
    timed_out: bool
    junit: Path | None


@dataclass(frozen=True)
class Counts:
    tests: int = 0
    failures: int = 0
    errors: int = 0
    skipped: int = 0


def junit_file(classname: str, root: Path | None) -> str:
    """The repository-relative file of a JUnit classname (`pkg.test_mod.TestClass`)."""
    parts = classname.split(".")
    for end in range(len(parts), 0, -1):
        candidate = "/".join(parts[:end]) + ".py"
        if root is None or (root / candidate).is_file():
            return candidate
    return ""


def parse_junit(path: Path, repo: Path | None = None) -> tuple[Counts, list[Finding]]:
    try:
        root = ET.parse(path).getroot()  # noqa: S314 - our own test run's report
    except (ET.ParseError, OSError) as exc:
        raise GateUnavailable(f"unreadable JUnit XML: {exc}") from None
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    counts = Counts(
        sum(int(s.get("tests", 0)) for s in suites),
        sum(int(s.get("failures", 0)) for s in suites),
        sum(int(s.get("errors", 0)) for s in suites),
        sum(int(s.get("skipped", 0)) for s in suites),
    )
    findings = []
    for case in root.iter("testcase"):
        for kind in ("failure", "error"):
            node = case.find(kind)
            if node is None:
                continue
            where = case.get("file") or junit_file(case.get("classname", ""), repo)
            name = f"{case.get('classname', '')}::{case.get('name', '')}".strip(":")
            detail = (node.get("message") or node.text or "").strip().splitlines()
            first = detail[0][:300] if detail else kind
            findings.append(
                Finding(
                    f"tests.{kind}",
                    "error",
                    where,
                    int(case.get("line") or 0) + 1 if case.get("line") else 0,
                    redact(f"{name} {'failed' if kind == 'failure' else 'errored'}: {first}"),
                )
            )
    return counts, findings


class TestsGate:
    name = "tests"
    __test__ = False  # not a pytest class, whatever its name

    def run(self, ctx: GateContext, settings: GateSettings) -> GateResult:
        started = time.monotonic()
        command = str(settings.get("command") or (ctx.stack.test_command if ctx.stack else ""))
        if not command:
            return GateResult(
                self.name,
                "skipped",
                (),
                time.monotonic() - started,
                "no test command: no stack detected and gates.tests.command is empty",
            )
        parsed = parse_pytest(command)
        pytest = parsed is not None or "pytest" in command
        config = base_config(ctx) if parsed is not None else None
        tampered, reverted = tampering(ctx, settings)
        with tempfile.TemporaryDirectory(prefix="karma-tests-") as scratch:
            invocation = Invocation(command, parsed, config, Path(scratch), reverted)
            result = self._check(ctx, settings, invocation, pytest, started)
        if not tampered:
            return result
        return replace(
            result,
            status="failed",
            findings=(*result.findings, *tampered),
            summary=result.summary
            + (f"; {len(reverted)} file(s) with outcome hooks ran at their base version"
               if reverted else ""),
        )  # fmt: skip

    def _check(
        self,
        ctx: GateContext,
        settings: GateSettings,
        invocation: Invocation,
        pytest: bool,
        started: float,
    ) -> GateResult:
        command = invocation.command
        findings: list[Finding] = []
        head = self._run(ctx, settings, ctx.repo, invocation, "head", junit=pytest)
        if head.timed_out:
            return GateResult(
                self.name,
                "error",
                (),
                time.monotonic() - started,
                f"the test suite did not finish within {settings.timeout_s:.0f} s",
                data={"output_tail": redact(head.output[-2000:])},
            )
        if pytest and head.exit_code == PYTEST_NO_TESTS:
            return GateResult(
                self.name, "skipped", (), time.monotonic() - started, "no tests were collected"
            )
        counts = Counts()
        if head.junit is not None and head.junit.is_file():
            counts, findings = parse_junit(head.junit, ctx.repo)
        elif head.exit_code != 0:
            tail = redact(head.output.strip().splitlines()[-1] if head.output.strip() else "")
            findings.append(
                Finding(
                    "tests.command-failed",
                    "error",
                    "",
                    0,
                    f"`{command}` exited {head.exit_code}: {tail[:300]}",
                )
            )
        elif invocation.parsed is not None:
            findings.append(
                Finding(
                    "tests.no-report",
                    "error",
                    "",
                    0,
                    f"`{command}` exited 0 but wrote no JUnit report: the run cannot be trusted",
                )
            )
        if head.exit_code != 0 and not findings:
            tail = redact(head.output.strip()[-300:])
            findings.append(
                Finding(
                    "tests.command-failed",
                    "error",
                    "",
                    0,
                    f"`{command}` exited {head.exit_code}: {tail}",
                )
            )
        base_count = None
        if pytest:
            base_count = self._collect_base(ctx, settings, invocation)
            if (
                base_count is not None
                and counts.tests < base_count
                and not settings.get("allow_fewer_tests", False)
            ):
                findings.append(
                    Finding(
                        "tests.fewer-tests",
                        "error",
                        "",
                        0,
                        f"{counts.tests} tests ran, fewer than the base's {base_count}",
                    )
                )
        if pytest and invocation.parsed is None:
            findings.append(
                Finding(
                    "tests.not-isolated",
                    "warning",
                    "",
                    0,
                    f"`{command}` is not a plain `python -m pytest`/`pytest` command: the gate "
                    "cannot isolate it from the tree's configuration and modules",
                )
            )
        blocking = [f for f in findings if f.severity == "error"]
        status: Status = "failed" if blocking else ("warning" if findings else "passed")
        passed = counts.tests - counts.failures - counts.errors - counts.skipped
        summary = (
            f"{counts.tests} tests: {passed} passed, {counts.failures} failed, "
            f"{counts.errors} errors, "
            f"{counts.skipped} skipped"
            + (f" (base collected {base_count})" if base_count is not None else "")
        )
        return GateResult(
            self.name,
            status,
            tuple(findings),
            time.monotonic() - started,
            summary,
            data={
                "tests": counts.tests,
                "failures": counts.failures,
                "errors": counts.errors,
                "skipped": counts.skipped,
                "base_tests": base_count,
                "where": "sandbox" if self._sandboxed(ctx, settings) else "host",
                "isolated": invocation.parsed is not None,
            },
        )

    def _sandboxed(self, ctx: GateContext, settings: GateSettings) -> bool:
        where = str(settings.get("where", "auto"))
        if where == "sandbox" and (ctx.start_sandbox is None or ctx.sandbox_image is None):
            raise GateUnavailable("gates.tests.where is 'sandbox' but no sandbox is available")
        return where == "sandbox" or (
            where == "auto" and ctx.start_sandbox is not None and ctx.sandbox_image is not None
        )

    def _collect_base(
        self, ctx: GateContext, settings: GateSettings, invocation: Invocation
    ) -> int | None:
        with base_worktree(ctx) as tree:
            run = self._run(
                ctx, settings, tree, invocation, "base", junit=False, extra=("--collect-only", "-q")
            )
        if run.timed_out or run.exit_code not in (0, PYTEST_NO_TESTS):
            return None
        match = COLLECTED.search(run.output)
        if match:
            return int(match.group(1) or match.group(2))
        # Under -qq pytest prints one "path: count" line per file instead.
        per_file = [int(m.group(1)) for m in PER_FILE.finditer(run.output)]
        if per_file:
            return sum(per_file)
        return 0 if run.exit_code == PYTEST_NO_TESTS else None

    def _run(
        self,
        ctx: GateContext,
        settings: GateSettings,
        tree: Path,
        invocation: Invocation,
        which: str,
        *,
        junit: bool,
        extra: tuple[str, ...] = (),
    ) -> Run:
        scratch = invocation.scratch / which
        scratch.mkdir()
        if self._sandboxed(ctx, settings):
            return self._run_sandbox(ctx, settings, tree, invocation, which, junit, extra)
        if invocation.reverted and which == "head":
            with throwaway(tree) as copy:
                invocation.revert(copy)
                return self._run_host(ctx, settings, copy, invocation, scratch, junit, extra)
        return self._run_host(ctx, settings, tree, invocation, scratch, junit, extra)

    def _run_host(
        self,
        ctx: GateContext,
        settings: GateSettings,
        tree: Path,
        invocation: Invocation,
        scratch: Path,
        junit: bool,
        extra: tuple[str, ...],
    ) -> Run:
        report = scratch / "junit.xml"
        home = scratch / "home"
        home.mkdir()
        text = invocation.shell(
            rootdir=str(tree),
            config_file=(
                str(invocation.config_file(scratch / "config")) if invocation.parsed else ""
            ),
            junit=str(report) if junit else None,
            extra=extra,
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
        return Run(proc.returncode, output, False, report if report.is_file() else None)

    def _run_sandbox(
        self,
        ctx: GateContext,
        settings: GateSettings,
        tree: Path,
        invocation: Invocation,
        which: str,
        junit: bool,
        extra: tuple[str, ...],
    ) -> Run:
        from karma.sandbox import spec_from_config
        from karma.sandbox.interface import SandboxError
        from karma.sandbox.project import install_project

        assert ctx.start_sandbox is not None and ctx.sandbox_image is not None
        scratch = invocation.scratch / which
        report = scratch / "junit.xml"
        with throwaway(tree) as copy:
            if which == "head":
                invocation.revert(copy)
            spec = spec_from_config(
                ctx.config,
                image=ctx.sandbox_image,
                workspace=copy,
                run_id=ctx.run_id,
                task_id="gate-tests",
            )
            box = ctx.start_sandbox(spec)
            try:
                installed = install_project(box, workdir=spec.workdir, timeout_s=settings.timeout_s)
                if installed.result is not None and not installed.ok:
                    failed = installed.result
                    output = f"{installed.detail}\n{failed.output}"
                    return Run(failed.exit_code or 1, output, failed.timed_out, None)
                if invocation.parsed is not None:
                    box.copy_in(invocation.config_file(scratch / "config").parent, SANDBOX_CONFIG)
                text = invocation.shell(
                    rootdir=spec.workdir,
                    config_file=f"{SANDBOX_CONFIG}/{invocation.config_name}",
                    junit=SANDBOX_JUNIT if junit else None,
                    extra=extra,
                    sandboxed=True,
                    installed=installed.paths,
                )
                result = box.exec(text, timeout_s=settings.timeout_s)
                if junit and not result.timed_out:
                    # No report (or a broken archive): the run is judged by its exit code.
                    with contextlib.suppress(OSError, SandboxError, tarfile.TarError):
                        box.copy_out(SANDBOX_JUNIT, report)
            finally:
                box.close()
        return Run(
            result.exit_code,
            result.output,
            result.timed_out,
            report if report.is_file() else None,
        )
