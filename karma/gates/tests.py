"""The tests gate: the stack's test command with JUnit XML, and test integrity.

The suite runs in a sandbox when the context gives one (`where = "auto"`), else on the
host (a CI job checking a human's change). A pytest command gets `--junitxml`, parsed
into counts and one finding per failing test. Integrity: the number of tests must not
drop below the base's (collected in a `git worktree` of the base, never in the user's
tree), and the change may not add skip/xfail markers, unless the suite approves it.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from karma.gates.change import base_worktree, diff_text
from karma.gates.interface import (
    Finding,
    GateContext,
    GateResult,
    GateSettings,
    GateUnavailable,
    Status,
)
from karma.gates.secrets import added_lines, redact

SKIP_MARKER = re.compile(
    r"(@pytest\.mark\.(skip|skipif|xfail)\b|\bpytest\.(skip|xfail|importorskip)\(|@unittest\.(skip|skipIf|skipUnless|expectedFailure)\b)"
)
COLLECTED = re.compile(r"(\d+) tests? collected|collected (\d+) items?")
PYTEST_NO_TESTS = 5
# Inside the sandbox, /tmp is its own private tmpfs (SandboxSpec.tmpfs_mb).
SANDBOX_JUNIT = "/tmp/junit.xml"  # noqa: S108
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
        pytest = "pytest" in command
        findings: list[Finding] = []
        head = self._run(
            ctx, settings, ctx.repo, command + (" --junitxml={junit}" if pytest else "")
        )
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
            shutil.rmtree(head.junit.parent, ignore_errors=True)
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
            base_count = self._collect_base(ctx, settings, command)
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
        if not settings.get("allow_new_skips", False):
            for path, line, text in added_lines(diff_text(ctx, context_lines=0)):
                if path.endswith(".py") and SKIP_MARKER.search(text):
                    findings.append(
                        Finding(
                            "tests.new-skip-marker",
                            "error",
                            path,
                            line,
                            f"new skip/xfail marker: {text.strip()[:120]}",
                        )
                    )
        status: Status = "failed" if findings else "passed"
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
            },
        )

    def _sandboxed(self, ctx: GateContext, settings: GateSettings) -> bool:
        where = str(settings.get("where", "auto"))
        if where == "sandbox" and (ctx.start_sandbox is None or ctx.sandbox_image is None):
            raise GateUnavailable("gates.tests.where is 'sandbox' but no sandbox is available")
        return where == "sandbox" or (
            where == "auto" and ctx.start_sandbox is not None and ctx.sandbox_image is not None
        )

    def _collect_base(self, ctx: GateContext, settings: GateSettings, command: str) -> int | None:
        with base_worktree(ctx) as tree:
            run = self._run(ctx, settings, tree, command + " --collect-only -q")
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

    def _run(self, ctx: GateContext, settings: GateSettings, tree: Path, command: str) -> Run:
        if self._sandboxed(ctx, settings):
            return self._run_sandbox(ctx, settings, tree, command)
        scratch = Path(tempfile.mkdtemp(prefix="karma-tests-"))
        junit = scratch / "junit.xml"
        env = {
            k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_TOKEN", "_SECRET"))
        }
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        try:
            proc = subprocess.Popen(  # noqa: S602 - the project's own configured test command
                command.replace("{junit}", shlex.quote(str(junit))),
                shell=True,
                cwd=tree,
                env=env,
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
            shutil.rmtree(scratch, ignore_errors=True)
            return Run(-9, output, True, None)
        return Run(proc.returncode, output, False, junit if junit.is_file() else None)

    def _run_sandbox(
        self, ctx: GateContext, settings: GateSettings, tree: Path, command: str
    ) -> Run:
        from karma.sandbox import spec_from_config
        from karma.sandbox.interface import SandboxError

        assert ctx.start_sandbox is not None and ctx.sandbox_image is not None
        spec = spec_from_config(
            ctx.config,
            image=ctx.sandbox_image,
            workspace=tree,
            run_id=ctx.run_id,
            task_id="gate-tests",
        )
        box = ctx.start_sandbox(spec)
        try:
            result = box.exec(
                command.replace("{junit}", SANDBOX_JUNIT), timeout_s=settings.timeout_s
            )
            junit = None
            if "{junit}" in command and not result.timed_out:
                scratch = Path(tempfile.mkdtemp(prefix="karma-tests-"))
                try:
                    box.copy_out(SANDBOX_JUNIT, scratch / "junit.xml")
                    junit = scratch / "junit.xml"
                except (OSError, SandboxError):
                    junit = None
        finally:
            box.close()
        return Run(
            result.exit_code,
            result.output,
            result.timed_out,
            junit if junit and junit.is_file() else None,
        )
