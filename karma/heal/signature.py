"""Failure signatures: the few lines that carry an error, normalised and hashed.

Paths, line and column numbers, hex, numbers, timestamps, durations and temporary
names are replaced by placeholders, so the same failure in another file, on another
day, in another container gives the same signature; a different error does not.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence

# Order matters: timestamps before numbers, paths before names.
_RULES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), placeholder)
    for pattern, placeholder in (
        (r"\d{4}-\d\d-\d\d[T _]\d\d[:_]\d\d[:_]\d\d(?:[.,_]\d+)?Z?", "<time>"),
        (r"\b\d\d:\d\d:\d\d(?:\.\d+)?\b", "<time>"),
        (r"(?:/tmp|/var/tmp|/var/folders)/[\w./-]*|\b(?:tmp|temp)[\w.-]*|pytest-of-\w+", "<tmp>"),
        (r"(?:[A-Za-z]:)?(?:[\w.@+~-]*/)+[\w.@+-]+", "<path>"),
        (
            r"\b[\w-]+\.(?:py|pyi|js|jsx|ts|tsx|mjs|cjs|go|rs|c|h|cc|cpp|hpp|java|rb|toml|json|yaml|yml|lock|cfg|ini|txt|log)\b",
            "<path>",
        ),
        (r"\b0x[0-9a-fA-F]+\b|\b[0-9a-f]{7,}\b", "<hex>"),
        (
            r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b",
            "<id>",
        ),
        (r"\d+(?:\.\d+)*(?:ms|s|m|h)?\b", "<n>"),
        (r"[ \t]+", " "),
    )
)
_TEST_NAME = re.compile(r"(?:::|\.)test_?\w*|\btest_\w+", re.IGNORECASE)
# Matched against the lower-cased tail: a case-sensitive scan is several times faster.
KEY_LINE = re.compile(
    r"error|exception|traceback|fail|fatal|panic|denied|not found|cannot|could not|unable|"
    r"no such|no space|killed|timeout|timed out|refused|abort|undefined|invalid|expected|"
    r"unsatisfiable|conflict|\be\d{3,4}\b|\bts\d{4}\b"
)
KEY_TAIL = 4000
MAX_KEY_LINES = 8
MAX_LINE = 300


def normalise(line: str) -> str:
    """One log line without the details that differ between two instances of a failure."""
    line = line.strip()[:MAX_LINE]
    for pattern, placeholder in _RULES:
        line = pattern.sub(placeholder, line)
    return line.strip()


def key_lines(
    text: str,
    anchors: Sequence[tuple[int, int]] = (),
    *,
    tail: int = KEY_TAIL,
    limit: int = MAX_KEY_LINES,
) -> list[str]:
    """The lines that carry the error: those the matched regexes hit, else error-ish lines.

    `anchors` are (start, end) offsets of regex matches in `text`; without any, the
    last `limit` error-looking lines of the last `tail` characters are taken (the end of
    a log is where tools summarise).
    """
    lines: list[str] = []
    if anchors:
        for start, _end in sorted(anchors):
            begin = text.rfind("\n", 0, start) + 1
            stop = text.find("\n", start)
            lines.append(text[begin : stop if stop != -1 else len(text)].strip()[:MAX_LINE])
        return _dedupe(lines)[:limit]
    end_text = text[-tail:]
    # From the end back, stopping at `limit`: the end of a log holds enough error lines.
    picked: list[str] = []
    for raw in reversed(end_text.split("\n")):
        if (line := raw.strip()) and KEY_LINE.search(line.lower()):
            picked.append(line)
            if len(picked) == limit:
                break
    picked.reverse()
    lines = picked or [line.strip() for line in end_text.splitlines() if line.strip()][-3:]
    return _dedupe(line[:MAX_LINE] for line in lines)


def signature(failure_class: str, pattern_id: str, lines: Iterable[str]) -> str:
    """A 16-hex-digit hash of the class, the pattern and the normalised key lines."""
    normal = _dedupe(_TEST_NAME.sub("<test>", normalise(line)) for line in lines)
    digest = hashlib.sha256("\n".join([failure_class, pattern_id, *sorted(normal)]).encode())
    return digest.hexdigest()[:16]


def _dedupe(lines: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for line in lines:
        if line:
            seen.setdefault(line, None)
    return list(seen)
