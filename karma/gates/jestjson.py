"""jest's `--json` results, turned into the JUnit XML the tests gate reads.

jest has no JUnit reporter of its own (`jest-junit` is a package a project may not have),
but `jest --json --outputFile=<path>` writes every test's outcome as JSON. The gate asks
for that (`karma.nodecommand`), and where the run knows its root (the sandbox's working
directory, or the tree on the host) the report becomes JUnit: one `<testsuite>` per test
file, named by its path relative to that root, so the base's run and the head's, made
in different directories, name the same tests alike; each test's name its `describe`
path and title (`add > adds`, as vitest's reporter writes it); `pending`, `skipped`,
`todo` and `disabled` are skips; a file that failed to run (a syntax error, a missing
module) is one errored case, as pytest's collection error is.

Trust: the sandbox wrote the report. It is read as JSON data only, no larger than the
JUnit limit; anything that is not jest's shape is refused (`GateUnavailable`), never
guessed at.
"""

from __future__ import annotations

import json
import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path, PurePosixPath
from typing import Any

from karma.gates.interface import GateUnavailable
from karma.gates.junit import MAX_REPORT_BYTES

SKIPPED = frozenset({"pending", "skipped", "todo", "disabled"})
PASSED = frozenset({"passed", "focused"})
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_MESSAGE_CHARS = 4000


def is_jest_json(path: Path) -> bool:
    """Whether the report at `path` is JSON (jest's), not XML: its first byte that is no
    whitespace is `{`."""
    with path.open("rb") as report:
        head = report.read(256).lstrip()
    return head.startswith(b"{")


def as_junit(path: Path, root: str) -> None:
    """Rewrite jest's JSON results at `path` as JUnit XML, file paths relative to `root`."""
    size = path.stat().st_size
    if size > MAX_REPORT_BYTES:
        raise GateUnavailable(f"jest report refused: {size} bytes, over {MAX_REPORT_BYTES}")
    try:
        results = json.loads(path.read_bytes())
    except (ValueError, RecursionError) as exc:
        raise GateUnavailable(f"unreadable jest report: {exc}") from None
    files = results.get("testResults") if isinstance(results, dict) else None
    if not isinstance(files, list):
        raise GateUnavailable("unreadable jest report: no `testResults` list")
    suites = ET.Element("testsuites", name="jest")
    for entry in files:
        if not isinstance(entry, dict):
            raise GateUnavailable("unreadable jest report: a test file's entry is no object")
        suites.append(_suite(entry, root))
    ET.ElementTree(suites).write(path, encoding="utf-8", xml_declaration=True)


def _suite(entry: dict[str, Any], root: str) -> ET.Element:
    name = _relative(_text(entry.get("name")), root)
    suite = ET.Element("testsuite", name=name)
    cases = entry.get("assertionResults")
    cases = cases if isinstance(cases, list) else []
    for case in cases:
        if isinstance(case, dict):
            suite.append(_case(case, name))
    failed_to_run = entry.get("testExecError") or (
        entry.get("status") == "failed" and not cases and entry.get("message")
    )
    if failed_to_run:
        case = ET.SubElement(suite, "testcase", classname=name, name=name, file=name)
        message = _clean(_text(entry.get("message")) or _text(entry.get("testExecError")))
        message = message.replace("● Test suite failed to run", "").strip()
        error = ET.SubElement(case, "error", message=_first(message))
        error.text = message
    return suite


def _case(case: dict[str, Any], file: str) -> ET.Element:
    titles = case.get("ancestorTitles")
    path = [_text(t) for t in titles] if isinstance(titles, list) else []
    name = " > ".join([*path, _text(case.get("title"))])
    element = ET.Element("testcase", classname=file, name=name, file=file)
    status = case.get("status")
    if status in SKIPPED:
        ET.SubElement(element, "skipped")
    elif status not in PASSED:  # failed, or a status this reader does not know
        messages = case.get("failureMessages")
        text = _clean("\n".join(_text(m) for m in messages) if isinstance(messages, list) else "")
        failure = ET.SubElement(element, "failure", message=_first(text) or f"status {status}")
        failure.text = text
    return element


def _relative(name: str, root: str) -> str:
    path = PurePosixPath(name)
    if ".." in path.parts:
        return name
    for base in dict.fromkeys((PurePosixPath(root), PurePosixPath(os.path.realpath(root)))):
        if path.is_relative_to(base):
            return str(path.relative_to(base))
    return name


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _clean(text: str) -> str:
    return _ANSI.sub("", text)[:_MESSAGE_CHARS]


def _first(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0][:300] if lines else ""
