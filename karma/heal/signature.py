"""Failure signatures: the few lines that carry an error, normalised and hashed.

Paths, line and column numbers, hex, numbers, timestamps, durations and temporary
names are replaced by placeholders, so the same failure in another file, on another
day, in another container gives the same signature; a different error does not.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence

from karma.heal.scan import LiteralScan

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
_KEY_WORDS = (
    "error", "exception", "traceback", "fail", "fatal", "panic", "denied", "not found",
    "cannot", "could not", "unable", "no such", "no space", "killed", "timeout", "timed out",
    "refused", "abort", "undefined", "invalid", "expected", "unsatisfiable", "conflict",
)  # fmt: skip
KEY_LINE = re.compile("|".join(map(re.escape, _KEY_WORDS)) + r"|\be\d{3,4}\b|\bts\d{4}\b")
# The same test in one pass over the tail: the words by the literal scan, the codes
# (E0308, TS2322) by a regex that starts with a literal (so it skips ahead in C).
_KEY_SCAN = LiteralScan(_KEY_WORDS)
_KEY_CODES = re.compile(r"(?:e\d{3,4}|ts\d{4})\b")
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
    picked = _error_lines(end_text, limit)
    lines = picked or [line.strip() for line in end_text.splitlines() if line.strip()][-3:]
    return _dedupe(line[:MAX_LINE] for line in lines)


def _error_lines(text: str, limit: int) -> list[str]:
    """The last `limit` non-blank lines of `text` that `KEY_LINE` finds, in order."""
    lower = text.lower()
    picked: list[str] = []
    if len(lower) != len(text) or _KEY_SCAN.backend != "aho-corasick":
        # Lower-casing changed offsets (rare scripts), or no one-pass scan: line by line.
        for raw in reversed(text.split("\n")):
            if (line := raw.strip()) and KEY_LINE.search(line.lower()):
                picked.append(line)
                if len(picked) == limit:
                    break
        return picked[::-1]
    starts = [at for found in _KEY_SCAN.scan(lower).starts.values() for at in found]
    starts += [m.start() for m in _KEY_CODES.finditer(lower)
               if m.start() == 0 or not _is_word(lower[m.start() - 1])]  # fmt: skip
    begin = len(text) + 1
    for at in sorted(starts, reverse=True):
        if at >= begin:
            continue  # on a line already looked at
        begin = text.rfind("\n", 0, at) + 1
        end = text.find("\n", at)
        if line := text[begin : end if end != -1 else len(text)].strip():
            picked.append(line)
            if len(picked) == limit:
                break
    return picked[::-1]


def _is_word(char: str) -> bool:
    return char.isalnum() or char == "_"


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
