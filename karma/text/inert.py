"""Model or tool text made inert for a terminal or a log: redacted, ANSI and controls removed.

A runner reads workflow commands (`::error::`, `##[group]`) only at the start of a line; we
also break every `::` and `##[` so no untrusted text can smuggle one into a log.
"""

from __future__ import annotations

import re

from karma.text.redact import redact

ANSI_AND_CONTROLS = re.compile(
    r"\x1b\[[0-9;?]*[ -/]*[@-~]"  # CSI (colours, cursor)
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC (titles, hyperlinks)
    r"|\x1b[@-_]|[\x00-\x08\x0b-\x1f\x7f-\x9f]"
)
_COMMAND = re.compile(r"::|##\[")


def strip_controls(text: str) -> str:
    """`text` without ANSI escape sequences and control characters (tab and newline kept)."""
    return ANSI_AND_CONTROLS.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))


def plain(text: object, limit: int | None = None) -> str:
    """Model or tool text made printable: credentials redacted, ANSI and controls removed."""
    clean = strip_controls(redact(str(text)))
    if limit is not None and len(clean) > limit:
        clean = clean[: limit - 1] + "…"
    return clean


def _break_commands(text: str) -> str:
    return _COMMAND.sub(lambda m: m.group(0)[0] + "\u200b" + m.group(0)[1:], text)


def log_safe(text: object, limit: int = 300) -> str:
    """One inert log fragment: no newline, no `::` or `##[` a runner could take for a command."""
    return _break_commands(plain(text, limit).replace("\n", " ⏎ ").replace("\t", " "))


def inert_lines(text: object, limit: int | None = None) -> str:
    """Multi-line untrusted text for a terminal or log: each line inert, newlines kept."""
    return _break_commands(plain(text, limit))
