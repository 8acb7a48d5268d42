"""Counting a suite from its output, for stacks whose runner writes no JUnit report.

The regexes are data, the stack recipe's `test_report` (`karma.recipes.TestReport`):
Go's `go test -json` events (one `"Action":"pass"` a test), cargo's `test result:`
lines (numbers to sum). A listing command (`go test -list .`, `cargo test -- --list`)
lists the tests without running them, on head and base alike, so the head may not have
fewer; `skip_markers` flag a new `t.Skip(...)` or `#[ignore]` on a change's added lines.

Trust: the output is the sandbox's, untrusted. A test that prints a forged event line
can add to its own suite's count, never take away from the base's listing, and a run
that fails still fails the gate by its exit code.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable

from karma.gates.interface import Finding
from karma.gates.junit import Counts
from karma.recipes import Stack, TestReport


def _count(pattern: str, output: str) -> tuple[int, bool]:
    """What `pattern` counts in `output`, and whether it matched at all."""
    if not pattern:
        return 0, False
    matches = list(re.finditer(pattern, output, re.MULTILINE))
    if matches and re.compile(pattern).groups:
        return sum(int(m.group(1)) for m in matches if m.group(1).isdigit()), True
    return len(matches), bool(matches)


def report_counts(report: TestReport, output: str) -> Counts | None:
    """The suite's counts from its output; None when nothing in it is a test result."""
    (passed, p), (failed, f), (skipped, s) = (
        _count(pattern, output) for pattern in (report.passed, report.failed, report.skipped)
    )
    if not (p or f or s):
        return None
    return Counts(passed + failed + skipped, failed, 0, skipped)


def listed_tests(report: TestReport, output: str) -> tuple[str, ...] | None:
    """The names the listing printed (None: no listing regex)."""
    if not report.listed:
        return None
    regex = re.compile(report.listed, re.MULTILINE)
    return tuple(m.group(1) if regex.groups else m.group(0) for m in regex.finditer(output))


def new_skips(stack: Stack, added: Iterable[tuple[str, int, str]]) -> list[Finding]:
    """A `tests.new-skip-marker` finding per added line of a source file of `stack` that
    matches one of its skip markers (`t.Skip(`, `#[ignore]`)."""
    report = stack.test_report
    if report is None or not report.skip_markers:
        return []
    markers = [re.compile(marker) for marker in report.skip_markers]
    found = []
    for path, line, text in added:
        name = path.rsplit("/", 1)[-1]
        if not any(fnmatch.fnmatch(name, glob) for glob in stack.source_globs):
            continue
        if any(marker.search(text) for marker in markers):
            found.append(Finding("tests.new-skip-marker", "error", path, line,
                                 f"new skip in {path}: {text.strip()[:120]}"))  # fmt: skip
    return found
