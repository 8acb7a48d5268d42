"""The tests gate: the project's test command with JUnit XML, and test integrity.

The command is `gates.tests.command`, else the one the project defines at the base commit
(`karma.testcommand`: tox, nox, pytest configuration, or unittest discovery), else the
stack's. It runs in a sandbox when the context gives one (`where = "auto"`), else on the
host (`karma.gates.testrun`). A pytest command gets `--junitxml`, parsed into item counts
and one finding per failing test (`karma.gates.junit`).

Integrity (the change under check must not be able to talk the gate into passing):
pytest runs isolated, with the base's configuration (`isolation`); the head's collected
items are compared with the base's, counted the same way (`--collect-only` on both
sides): fewer fails the gate, and each base test the head lacks is named (with the new
test of its file, when it looks renamed); and the change may not add skip/xfail markers or
outcome-changing hooks (`tamper`), unless the suite approves skips (`allow_new_skips`;
hooks are never approved).
"""

from __future__ import annotations

import secrets
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from karma.errors import WorkspaceError
from karma.gates.change import base_worktree, host_git
from karma.gates.interface import (
    Finding,
    GateContext,
    GateResult,
    GateSettings,
    GateUnavailable,
    Severity,
    Status,
)
from karma.gates.isolation import JUNIT, Invocation, base_config, parse_pytest, unittest_listing
from karma.gates.junit import (
    Counts,
    collected_count,
    collected_ids,
    listed_ids,
    missing,
    outcomes,
    parse_junit,
    unittest_counts,
)
from karma.gates.secrets import redact
from karma.gates.tamper import tampering
from karma.gates.testreport import listed_tests, report_counts
from karma.gates.testrun import COLLECT, Run, Step, run_steps, sandboxed
from karma.recipes import Stack, TestReport
from karma.scheduler import alongside
from karma.testcommand import TestCommand, for_stack

PYTEST_NO_TESTS = 5
__all__ = ["Counts", "TestsGate", "parse_junit", "project_command"]


def project_command(ctx: GateContext, stack: Stack) -> TestCommand:
    """The test command the base commit defines (read from git objects, never the tree)."""
    try:
        return for_stack(host_git(ctx), ctx.base, stack, folder=ctx.folder)
    except WorkspaceError as exc:
        raise GateUnavailable(f"cannot read the base's test configuration: {exc}") from None


def _finding(rule: str, message: str, severity: Severity = "error") -> Finding:
    return Finding(rule, severity, "", 0, message)


class TestsGate:
    name = "tests"
    __test__ = False  # not a pytest class, whatever its name

    def run(self, ctx: GateContext, settings: GateSettings) -> GateResult:
        started = time.monotonic()
        chosen: TestCommand | None = None
        command = str(settings.get("command") or "")
        if not command and ctx.stack is not None:
            chosen = project_command(ctx, ctx.stack)
            command = chosen.command
        if not command:
            return GateResult(self.name, "skipped", (), time.monotonic() - started,
                              "no test command: no stack detected and gates.tests.command "
                              "is empty")  # fmt: skip
        parsed = parse_pytest(command)
        pytest = parsed is not None or "pytest" in command
        config = base_config(ctx) if parsed is not None else None
        tampered, reverted = tampering(ctx, settings)
        with tempfile.TemporaryDirectory(prefix="karma-tests-") as scratch:
            invocation = Invocation(command, parsed, config, Path(scratch), reverted)
            result = self._check(ctx, settings, invocation, pytest, started)
        if chosen is not None:  # recorded with the result, and shown in the report
            result = replace(
                result,
                summary=f"{result.summary}; `{command}` from {chosen.source}",
                data={**result.data, "command": command, "command_source": chosen.source,
                      "command_reason": chosen.reason},
            )  # fmt: skip
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
        report = ctx.stack.test_report if ctx.stack is not None and not pytest else None
        listing = _listing(invocation, pytest, report)
        reported = JUNIT in command  # the command writes the report it is counted by
        run = Step(junit=pytest or reported)
        steps = (listing.step, run) if listing else (run,)
        # The base's collection (its own tree and sandbox) runs beside the head's run.
        base, (*collect, head) = alongside(
            lambda: self._collect_base(ctx, settings, invocation, listing) if listing else None,
            lambda: run_steps(ctx, settings, ctx.repo, invocation, "head", steps),
        )
        if head.timed_out:
            return GateResult(self.name, "error", (), time.monotonic() - started,
                              f"the test suite did not finish within {settings.timeout_s:.0f} s",
                              data={"output_tail": redact(head.output[-2000:])})  # fmt: skip
        counts, findings = self._outcome(invocation, head, ctx.repo, report)
        base_count = listing.count(base.output) if listing and base else None
        if reported and listing is None and head.junit is not None:
            base_count, more = self._against_base(ctx, settings, invocation, head.junit)
            findings += more
        if _ran_none(pytest or reported, head, counts) and not base_count:
            return GateResult(self.name, "skipped", (), time.monotonic() - started,
                              "no tests were collected")  # fmt: skip
        if listing is not None and base is not None:
            head_ids = listing.ids(collect[0].output)
            head_count = listing.count(collect[0].output)
            if head_count is None:
                head_count = counts.tests  # the head does not collect: its run says why
            findings += self._compare(settings, head_count, head_ids, base_count,
                                      listing.ids(base.output))  # fmt: skip
        if pytest and invocation.parsed is None:
            findings.append(
                _finding(
                    "tests.not-isolated",
                    f"`{command}` is not a plain `python -m pytest`/`pytest` command: the gate "
                    "cannot isolate it from the tree's configuration and modules",
                    "warning",
                )
            )
        blocking = [f for f in findings if f.severity == "error"]
        status: Status = "failed" if blocking else ("warning" if findings else "passed")
        summary = (
            f"{counts.tests} tests: {counts.passed} passed, {counts.failures} failed, "
            f"{counts.errors} errors, {counts.skipped} skipped"
            + (f" (base collected {base_count})" if base_count is not None else "")
        )
        return GateResult(
            self.name, status, tuple(findings), time.monotonic() - started, summary,
            data={"tests": counts.tests, "failures": counts.failures, "errors": counts.errors,
                  "skipped": counts.skipped, "base_tests": base_count,
                  "where": "sandbox" if sandboxed(ctx, settings) else "host",
                  "isolated": invocation.parsed is not None},
        )  # fmt: skip

    def _outcome(
        self, invocation: Invocation, head: Run, repo: Path, report: TestReport | None
    ) -> tuple[Counts, list[Finding]]:
        command = invocation.command
        if head.junit is not None and head.junit.is_file():
            counts, findings = parse_junit(head.junit, repo)
        else:
            counted = report_counts(report, head.output) if report else None
            counts, findings = counted or unittest_counts(head.output) or Counts(), []
            if head.exit_code != 0:
                lines = head.output.strip().splitlines()
                tail = redact(lines[-1] if lines else "")
                findings.append(
                    _finding(
                        "tests.command-failed", f"`{command}` exited {head.exit_code}: {tail[:300]}"
                    )
                )
            elif invocation.parsed is not None or JUNIT in command:
                findings.append(_finding("tests.no-report", f"`{command}` exited 0 but wrote "
                                         "no JUnit report: the run cannot be trusted"))  # fmt: skip
        if head.exit_code != 0 and not findings:
            tail = redact(head.output.strip()[-300:])
            findings.append(
                _finding("tests.command-failed", f"`{command}` exited {head.exit_code}: {tail}")
            )
        return counts, findings

    def _compare(
        self,
        settings: GateSettings,
        head_count: int,
        head_ids: tuple[str, ...] | None,
        base_count: int | None,
        base_ids: tuple[str, ...] | None,
    ) -> list[Finding]:
        """The head's collected items against the base's: the same unit on both sides."""
        if base_count is None:
            return []
        gone = missing(base_ids, head_ids or ()) if base_ids else ""
        named = f": {gone} no longer collected" if gone else ""
        if head_count < base_count and not settings.get("allow_fewer_tests", False):
            return [_finding("tests.fewer-tests",
                             f"{head_count} tests collected, fewer than the base's "
                             f"{base_count}{named}")]  # fmt: skip
        if gone:
            return [_finding("tests.removed", f"base tests no longer collected: {gone}",
                             "warning")]  # fmt: skip
        return []

    def _against_base(
        self, ctx: GateContext, settings: GateSettings, invocation: Invocation, report: Path
    ) -> tuple[int | None, list[Finding]]:
        """A suite with no listing (Node's): the base's run reported the same way, its
        items against the head's; a head item skipped that the base ran is a new skip."""
        with base_worktree(ctx) as tree:
            (base,) = run_steps(ctx, settings, tree, invocation, "base", (Step(junit=True),))
        if base.junit is None:
            return None, []
        head_items, base_items = outcomes(report), outcomes(base.junit)
        found = self._compare(settings, len(head_items), tuple(head_items), len(base_items),
                              tuple(base_items))  # fmt: skip
        skipped = [i for i, s in head_items.items() if s == "skipped" and base_items.get(i)
                   != "skipped"]  # fmt: skip
        if skipped and not settings.get("allow_new_skips", False):
            found.append(_finding("tests.new-skip", f"{len(skipped)} test(s) skipped that the "
                                  f"base did not skip: {', '.join(skipped[:10])}"))  # fmt: skip
        return len(base_items), found

    def _collect_base(
        self, ctx: GateContext, settings: GateSettings, invocation: Invocation, listing: _Listing
    ) -> Run | None:
        with base_worktree(ctx) as tree:
            (run,) = run_steps(ctx, settings, tree, invocation, "base", (listing.step,))
        if run.timed_out or run.exit_code not in (0, PYTEST_NO_TESTS):
            return None
        if run.exit_code == PYTEST_NO_TESTS and listing.count(run.output) is None:
            return Run(run.exit_code, "0 tests collected", False, None)
        return run


@dataclass(frozen=True)
class _Listing:
    """How the suite's items are listed without running them, alike on head and base."""

    step: Step
    ids: Callable[[str], tuple[str, ...] | None]
    count: Callable[[str], int | None]


def _listing(invocation: Invocation, pytest: bool, report: TestReport | None) -> _Listing | None:
    """pytest's `--collect-only`, the stack's listing (`TestReport.listing`), or
    unittest's loader (`unittest_listing`); None for a command that is none of them (its
    run alone is judged)."""
    if pytest:
        return _Listing(Step(COLLECT), collected_ids, collected_count)
    if report is not None and report.listing and report.listed:
        listed = report

        def names(output: str) -> tuple[str, ...] | None:
            return listed_tests(listed, output)

        def many(output: str) -> int | None:
            found = names(output)
            return None if found is None else len(found)

        return _Listing(Step(command=report.listing), names, many)
    nonce = secrets.token_hex(8)
    command = unittest_listing(invocation.command, nonce)
    if command is None:
        return None

    def ids(output: str) -> tuple[str, ...] | None:
        return listed_ids(output, nonce)

    def count(output: str) -> int | None:
        found = ids(output)
        return len(found) if found else (0 if "0 tests collected" in output else None)

    return _Listing(Step(command=command), ids, count)


def _ran_none(reported: bool, head: Run, counts: Counts) -> bool:
    """Whether the head's run found no test at all (pytest's exit 5, an empty report,
    unittest's `Ran 0`)."""
    if reported:
        return head.exit_code == PYTEST_NO_TESTS or (
            head.exit_code == 0 and head.junit is not None and counts.tests == 0
        )
    return counts.tests == 0 and head.exit_code in (0, 5) and "Ran 0 tests" in head.output
