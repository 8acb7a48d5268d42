"""New skips in a change's JavaScript/TypeScript files, told from their text.

A JUnit report shows a test skipped at head that the base ran (`tests.new-skip`), but
only for a runner that writes one; jest, vitest and mocha without a JUnit reporter do
not. So every changed script file is also read at base and at head, and each skip form
(`SKIPS`: `it.skip`, `test.todo`, `xit`, `describe.only`, node:test's `{ skip: true }` and
`t.skip()`, mocha's `this.skip()`, ...) counted on both sides, comments and all: a form
that occurs more often at head than at base is new, and each added line that holds it is
named. Moving a skip within a file is not flagged; adding one anywhere is.

Trust: the texts are the model's (head) and the base commit's, read as text only (never
run), files over `MAX_BYTES` at head skipped with a finding of their own.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from karma.gates.interface import Finding

SCRIPT_SUFFIXES = (".js", ".jsx", ".mjs", ".cjs", ".ts", ".tsx", ".mts", ".cts")
MAX_BYTES = 1024 * 1024
_RUNNERS = r"(?:it|test|describe|context|suite|specify|bench)"
SKIPS: Mapping[str, re.Pattern[str]] = {
    "it.skip/test.skip/describe.skip": re.compile(
        rf"(?<![\w$.]){_RUNNERS}(?:\.\w+)*\.(?:skip|skipIf|runIf)\b"
    ),
    "test.todo/it.todo": re.compile(rf"(?<![\w$.]){_RUNNERS}(?:\.\w+)*\.todo\b"),
    ".only (every other test skipped)": re.compile(rf"(?<![\w$.]){_RUNNERS}(?:\.\w+)*\.only\b"),
    "xit/xdescribe/xtest": re.compile(r"(?<![\w$.])x(?:it|describe|test|context|specify)\s*\("),
    "fit/fdescribe": re.compile(r"(?<![\w$.])f(?:it|describe)\s*\("),
    "{ skip: ... } / { todo: ... }": re.compile(r"[{,]\s*(?:skip|todo)\s*:\s*(?:true\b|['\"`])"),
    "t.skip()/t.todo()/this.skip()": re.compile(r"(?<![\w$])(?:t|this|ctx)\.(?:skip|todo)\s*\("),
}


_TEST_DIRS = frozenset({"test", "tests", "__tests__", "spec", "specs", "e2e"})


def is_test_script(path: str) -> bool:
    """A script file that a JS runner would take for a test: `*.test.*`, `*.spec.*`,
    `*_test.*`, or any script under a `test/`, `tests/`, `__tests__/`, `spec/` folder."""
    parts = path.split("/")
    if not path.endswith(SCRIPT_SUFFIXES) or "node_modules" in parts:
        return False
    name = parts[-1]
    return bool(re.search(r"[._-](test|spec)\.\w+$", name)) or bool(_TEST_DIRS & set(parts[:-1]))


def _counts(text: str) -> dict[str, int]:
    return {name: len(pattern.findall(text)) for name, pattern in SKIPS.items()}


def new_skips(
    path: str, head: str, base: str | None, added: Sequence[tuple[int, str]]
) -> list[Finding]:
    """The skip findings of one changed script file (module docstring)."""
    if len(head) > MAX_BYTES:
        why = f"{path} is over {MAX_BYTES} characters: not scanned for new skips"
        return [Finding("tests.unscanned-script", "error", path, 0, why)]
    now, before = _counts(head), _counts(base or "")
    out: list[Finding] = []
    for name, pattern in SKIPS.items():
        extra = now[name] - before[name]
        if extra <= 0:
            continue
        lines = [(n, t) for n, t in added if pattern.search(t)] or [(0, "")]
        for number, text in lines[:extra]:
            what = f"new skip ({name}): {text.strip()[:120]}".rstrip(": ")
            out.append(Finding("tests.new-skip-marker", "error", path, number, what))
    return out
