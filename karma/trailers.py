"""The ids KARMA puts in names, and the provenance trailers it ends its commits with.

A task id, a run id and the branch names built from them (`karma/<run>`,
`karma-work/<run>/<task>-<n>`) and the `Karma-*` trailers of a commit message come from a
model (the plan) or lead back into the run record (`karma why`, `karma build --resume`
marks a task done when a commit on the build branch says so). So ids are checked whole
(`fullmatch`: `$` also accepts a trailing newline), the message a model wrote never
carries a line git would read as a `Karma-*` trailer, and parsing keeps only trailers
whose value is a well-formed id, each key once.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

TASK_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")
"""1 to 40 of a-z, 0-9, '-', '_' (ASCII only), starting with a letter or digit."""
RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
"""What `new_run_id` makes (`20261124-010000-abc123`) and any other safe ref component."""
TRAILERS = ("Karma-Run", "Karma-Task", "Karma-Attempt", "Karma-Model")
_VALUES: Mapping[str, re.Pattern[str]] = {
    "Karma-Run": RUN_ID,
    "Karma-Task": TASK_ID,
    "Karma-Attempt": re.compile(r"[0-9]{1,6}"),
    "Karma-Model": re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,199}"),
}
_TRAILER_LIKE = re.compile(r"(?i)^(\s*)(karma-[\w-]*\s*[:=])", re.MULTILINE)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")
SUBJECT_LIMIT = 200


def is_task_id(text: str) -> bool:
    return TASK_ID.fullmatch(text) is not None


def is_run_id(text: str) -> bool:
    return RUN_ID.fullmatch(text) is not None


def commit_message(title: str, body: str = "") -> str:
    """A commit message from model-written text, without trailers of its own.

    The subject is the title's first line (controls removed); in the body, a line that
    git would read as a `Karma-*` trailer is quoted (`> `), so only the block
    `with_trailers` appends can say which run and task a commit belongs to.
    """
    lines = _CONTROL.sub("", title.replace("\r", "\n")).strip().splitlines()
    subject = (lines[0].strip() if lines else "")[:SUBJECT_LIMIT] or "KARMA change"
    text = "\n".join(_CONTROL.sub("", line) for line in body.replace("\r", "\n").splitlines())
    text = _TRAILER_LIKE.sub(r"\1> \2", text).strip()
    return f"{subject}\n\n{text}" if text else subject


def with_trailers(message: str, trailers: Mapping[str, str]) -> str:
    """`message` and, as its last paragraph, the trailers (a value must be one line)."""
    for key, value in trailers.items():
        if "\n" in key or "\r" in key or "\n" in value or "\r" in value:
            raise ValueError(f"trailer {key!r} spans lines: {value!r}")
    block = "".join(f"{k}: {v}\n" for k, v in trailers.items())
    return message.strip() + "\n\n" + block


def parse_trailers(text: str) -> dict[str, str]:
    """The `Karma-*` trailers of git's `%(trailers:only,unfold)` output.

    A value that is not a well-formed id is dropped, and so is a key given twice (which
    one would be KARMA's?).
    """
    found: dict[str, str] = {}
    twice: set[str] = set()
    for line in text.splitlines():
        key, sep, value = line.partition(": ")
        pattern = _VALUES.get(key)
        if not sep or pattern is None or pattern.fullmatch(value.strip()) is None:
            continue
        if key in found:
            twice.add(key)
        found[key] = value.strip()
    return {k: v for k, v in found.items() if k not in twice}
