"""What a test run reports, counted in test items: JUnit XML, pytest collection, unittest.

A JUnit report can hold several `<testcase>` elements for one test (pytest-subtests
writes one per subtest; a failing teardown adds one). The gate counts *items*: one per
`classname::name`, its outcome the worst of its elements, so the head's run and the
base's collection count the same units. A unittest suite is listed the same way on both
sides (`unittest_listing`: the command's own loader, its tests' ids printed, none run;
`subTest`s are inside their test, as `Ran N tests` counts them).
"""

from __future__ import annotations

import re
import shlex
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from karma.gates.interface import Finding, GateUnavailable
from karma.gates.secrets import redact

COLLECTED = re.compile(r"(\d+) tests? collected|collected (\d+) items?")
PER_FILE = re.compile(r"^\S+\.py: (\d+)$", re.MULTILINE)
NODE_ID = re.compile(r"^(\S[^\n]*?\.py::[^\n]+?)\s*$", re.MULTILINE)
UNITTEST_RAN = re.compile(r"^Ran (\d+) tests? in ", re.MULTILINE)
UNITTEST_FAILED = re.compile(r"^FAILED \(([^)]*)\)", re.MULTILINE)
# unittest's own command line (`discover -s tests`, `tests.test_x`, nothing: discovery),
# loaded as `python -m unittest` loads it; the ids are printed instead of running. Each
# line carries a nonce taken off `sys.argv` before any test module is imported, so a
# module printing at import cannot pass for a test (code in the same process could still
# dig it out: the listing, like pytest's collection, counts what the suite defines).
_LISTER = """import sys, unittest
nonce = sys.argv.pop(1)
def ids(suite):
    for test in suite:
        yield from ids(test) if isinstance(test, unittest.TestSuite) else [test.id()]
class Listing(unittest.TestProgram):
    def runTests(self):
        found = list(ids(self.test))
        print(*(f"{nonce} {i}" for i in found), sep="\\n")
        print(f"{len(found)} tests collected")
        sys.exit(0)
Listing(module=None, argv=["python -m unittest", *sys.argv[1:]])
"""
_RANK = {"passed": 0, "skipped": 1, "failure": 2, "error": 3}


@dataclass(frozen=True)
class Counts:
    tests: int = 0
    failures: int = 0
    errors: int = 0
    skipped: int = 0

    @property
    def passed(self) -> int:
        return self.tests - self.failures - self.errors - self.skipped


def junit_file(classname: str, root: Path | None) -> str:
    """The repository-relative file of a JUnit classname (`pkg.test_mod.TestClass`, or a
    path as vitest writes it: `test/add.test.js`)."""
    if root is not None and "/" in classname and _plain_file(root, classname):
        return classname
    parts = classname.split(".")
    for end in range(len(parts), 0, -1):
        candidate = "/".join(parts[:end]) + ".py"
        if root is None or (root / candidate).is_file():
            return candidate
    return ""


def _plain_file(root: Path, relative: str) -> bool:
    parts = PurePosixPath(relative).parts
    return (
        bool(parts)
        and ".." not in parts
        and not relative.startswith("/")
        and (root / relative).is_file()
    )


def _within(file: str, repo: Path | None) -> str:
    """A report's `file` (mocha's xunit writes it absolute, in the sandbox's paths) as the
    repository-relative path it ends with, when one exists."""
    if not file.startswith("/") or repo is None:
        return file
    parts = PurePosixPath(file).parts[1:]
    return next((tail for i in range(len(parts))
                 if _plain_file(repo, tail := "/".join(parts[i:]))), file)  # fmt: skip


def _finding(case: ET.Element, kind: str, node: ET.Element, repo: Path | None) -> Finding:
    where = _within(case.get("file") or "", repo) or junit_file(case.get("classname", ""), repo)
    name = f"{case.get('classname', '')}::{case.get('name', '')}".strip(":")
    detail = (node.get("message") or node.text or "").strip().splitlines()
    first = detail[0][:300] if detail else kind
    line = int(case.get("line") or 0) + 1 if case.get("line") else 0
    verb = "failed" if kind == "failure" else "errored"
    return Finding(f"tests.{kind}", "error", where, line, redact(f"{name} {verb}: {first}"))


MAX_REPORT_BYTES = 64 * 1024 * 1024
"""A JUnit report larger than this is refused (20,000 pytest cases take about 4 MB)."""
_PROLOG_BYTES = 64 * 1024


def _refuse(path: Path) -> None:
    """A report the sandbox wrote is untrusted: too large, or declaring a DTD (entities
    that expand, external ones), it is not parsed."""
    size = path.stat().st_size
    if size > MAX_REPORT_BYTES:
        raise GateUnavailable(f"JUnit report refused: {size} bytes, over {MAX_REPORT_BYTES}")
    with path.open("rb") as report:
        prolog = report.read(_PROLOG_BYTES)
    if b"<!DOCTYPE" in prolog.upper() or b"<!ENTITY" in prolog.upper():
        raise GateUnavailable("JUnit report refused: it declares a DOCTYPE or entities")


def _items(
    path: Path, repo: Path | None
) -> tuple[dict[tuple[str, str, str], str], dict[tuple[str, str, str], Finding]]:
    """Each item's outcome and first failure, keyed by (enclosing suites, classname, name):
    Node's reporter names every case's class `test`, its `describe` blocks are suites."""
    outcome: dict[tuple[str, str, str], str] = {}
    findings: dict[tuple[str, str, str], Finding] = {}
    suites: list[str] = []
    try:
        _refuse(path)
        # Streamed: each case is dropped once read, so a 20,000-test report stays small.
        for event, case in ET.iterparse(path, events=("start", "end")):  # noqa: S314 - _refuse
            if case.tag == "testsuite":
                if event == "start":
                    suites.append(case.get("name", ""))
                else:
                    suites.pop()
                    case.clear()
            if case.tag != "testcase" or event != "end":
                continue
            key = ("/".join(suites), case.get("classname", ""), case.get("name", ""))
            state = "passed"
            for child in case:
                tag = child.tag
                if tag in ("failure", "error") and _RANK[tag] > _RANK[state]:
                    state = tag
                    findings.setdefault(key, _finding(case, tag, child, repo))
                elif tag == "skipped" and state == "passed":
                    state = "skipped"
            if _RANK[state] >= _RANK.get(outcome.get(key, "passed"), 0):
                outcome[key] = state
            case.clear()
    except (ET.ParseError, OSError) as exc:
        raise GateUnavailable(f"unreadable JUnit XML: {exc}") from None
    return outcome, findings


def parse_junit(path: Path, repo: Path | None = None) -> tuple[Counts, list[Finding]]:
    """Item counts (subtests folded into their test) and one finding per failing item."""
    outcome, findings = _items(path, repo)
    states = list(outcome.values())
    counts = Counts(
        len(states), states.count("failure"), states.count("error"), states.count("skipped")
    )
    return counts, [findings[k] for k in outcome if k in findings and outcome[k] != "passed"]


def outcomes(path: Path) -> dict[str, str]:
    """Each item of a report (`suite/path::classname::name`) and its outcome: `passed`,
    `skipped` (a todo too), `failure` or `error`."""
    return {"::".join(key).strip(":"): state for key, state in _items(path, None)[0].items()}


def collected_ids(output: str) -> tuple[str, ...] | None:
    """The node ids of `pytest --collect-only --verbosity=-1`; None when none are listed."""
    ids = [m.group(1) for m in NODE_ID.finditer(output)]
    return tuple(dict.fromkeys(ids)) if ids else None


def collected_count(output: str) -> int | None:
    """How many items a `--collect-only` run reported, in any of pytest's verbosities."""
    if (ids := collected_ids(output)) is not None:
        return len(ids)
    match = COLLECTED.search(output)
    if match:
        return int(match.group(1) or match.group(2))
    per_file = [int(m.group(1)) for m in PER_FILE.finditer(output)]
    return sum(per_file) if per_file else None


def unittest_listing(python: Sequence[str], args: Sequence[str], nonce: str) -> str:
    """The shell command that lists, without running them, the tests that `python -m
    unittest *args` would run (`python`: the interpreter and its flags), each line marked
    with `nonce`."""
    return shlex.join([*python, "-c", _LISTER, nonce, *args])


def listed_ids(output: str, nonce: str) -> tuple[str, ...] | None:
    """The test ids a `unittest_listing` marked with `nonce` printed; None for none."""
    mark = f"{nonce} "
    ids = [line[len(mark) :].strip() for line in output.splitlines() if line.startswith(mark)]
    return tuple(dict.fromkeys(ids)) if ids else None


def unittest_counts(output: str) -> Counts | None:
    """The counts `python -m unittest` prints (`Ran 3 tests`, `FAILED (failures=1)`)."""
    ran = UNITTEST_RAN.search(output)
    if ran is None:
        return None
    parts = dict.fromkeys(("failures", "errors", "skipped"), 0)
    for match in UNITTEST_FAILED.finditer(output):
        for item in match.group(1).split(","):
            name, _, value = item.strip().partition("=")
            if name in parts and value.isdigit():
                parts[name] = int(value)
    tail = output[ran.end() :]
    if skipped := re.search(r"skipped=(\d+)", tail):
        parts["skipped"] = int(skipped.group(1))
    return Counts(int(ran.group(1)), parts["failures"], parts["errors"], parts["skipped"])


def _home(test: str) -> str:
    """Where a test lives, for telling a rename: its file (`t.py::a`), or its class
    (unittest's `pkg.test_mod.TestCase.test_a`)."""
    return test.split("::", 1)[0] if "::" in test else test.rpartition(".")[0]


def missing(base: tuple[str, ...], head: tuple[str, ...], limit: int = 10) -> str:
    """The base tests the head no longer has, each with a new test of its file if any
    (a rename), as one sentence for a finding."""
    now, before = set(head), set(base)
    gone = [t for t in base if t not in now]
    added: dict[str, list[str]] = {}  # file -> its new tests, each the rename of one gone
    for test in head:
        if test not in before:
            added.setdefault(_home(test), []).append(test)
    parts = []
    for test in gone[:limit]:
        new = added.get(_home(test))
        parts.append(f"{test} (renamed to {new.pop(0)}?)" if new else test)
    more = f" and {len(gone) - limit} more" if len(gone) > limit else ""
    return ", ".join(parts) + more
