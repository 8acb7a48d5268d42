"""What never leaves the process: credentials found by pattern, and the host's own secrets.

`redact(text)` replaces every credential the patterns find (Anthropic, OpenAI, GitHub, AWS,
Slack, private keys, high-entropy values assigned to secret-looking names) and every
value of the host's secret environment variables with `[REDACTED:<rule>]`. The run
store and the event bus pass everything they take through it (`redact_value` for
structures, `redact_json` for JSON text), so model requests and replies, tool output,
events, reasons and findings are redacted once, on the way in; reports, logs, commit
messages and the CLI redact again on the way out. The secrets gate finds credentials in a
change with the same `PATTERNS`.

The host's secrets are the values (8 characters or more) of the provider and CI keys
named in `ENV_KEYS` and of every variable named `*_API_KEY`, `*_TOKEN`, `*_SECRET` or
`*_PASSWORD`. They are collected when the process first redacts and again whenever a
store or bus is opened (`remember_host_secrets`); the set only grows, so a key removed
from the environment after it was read is still never written.
"""

from __future__ import annotations

import json
import math
import os
import re
import threading
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Pattern:
    rule: str
    title: str
    regex: re.Pattern[str]
    group: int = 0
    """The group holding the secret value (0: the whole match)."""
    entropy: bool = False
    """Only a value of high Shannon entropy counts (generic assignments)."""
    needles: tuple[str, ...] = ()
    """Text without any of these (one in lowercase: in the case-folded text) cannot match:
    the regex is not run. Empty: always run."""
    anchored: bool = False
    """The regex starts at a needle: it is tried only where a needle is (no full scan)."""


def make_pattern(
    rule: str,
    title: str,
    regex: str,
    group: int = 0,
    entropy: bool = False,
    needles: tuple[str, ...] = (),
    anchored: bool = False,
) -> Pattern:
    return Pattern(f"secrets.{rule}", title, re.compile(regex), group, entropy, needles, anchored)


# Most specific first: an Anthropic key also looks like an OpenAI one. The needles keep
# redaction cheap (it runs on every value the store writes): most text holds none of them.
PATTERNS: tuple[Pattern, ...] = (
    make_pattern(
        "private-key",
        "private key",
        r"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY(?: BLOCK)?-----"
        r"(?:[\s\S]*?-----END (?:[A-Z]+ )?PRIVATE KEY(?: BLOCK)?-----)?",
        needles=("-----BEGIN ",),
    ),
    make_pattern(
        "anthropic-api-key",
        "Anthropic API key",
        r"\bsk-ant-[a-z]+\d*-[A-Za-z0-9_\-]{20,}",
        needles=("sk-ant-",),
    ),
    make_pattern(
        "openai-api-key",
        "OpenAI API key",
        r"\bsk-(?!ant-)(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}",
        needles=("sk-",),
    ),
    make_pattern(
        "github-token",
        "GitHub token",
        r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_\w{22,})",
        needles=("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
    ),
    make_pattern(
        "aws-access-key-id",
        "AWS access key ID",
        r"\b(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}\b",
        needles=("AKIA", "ASIA", "ABIA", "ACCA"),
    ),
    make_pattern(
        "aws-secret-access-key",
        "AWS secret access key",
        r"(?i)aws_?secret_?(?:access_?)?key\W{0,4}[:=]\s*['\"]?([A-Za-z0-9/+=]{40})\b",
        group=1,
        needles=("aws",),
    ),
    make_pattern(
        "slack-token", "Slack token", r"\bxox[abposr]-[A-Za-z0-9\-]{10,}", needles=("xox",)
    ),
    make_pattern(
        "slack-webhook",
        "Slack webhook URL",
        r"https://hooks\.slack\.com/(?:services|workflows)/[A-Za-z0-9/_\-]{20,}",
        needles=("https://hooks.slack.com/",),
    ),
    # The name's part before the keyword (`MY_API_KEY`) is not in the regex: the value,
    # the part that counts, is the same, and a match starts at a keyword.
    make_pattern(
        "generic-high-entropy",
        "high-entropy value assigned to a secret-looking name",
        r"(?i)(?:secret|token|passw(?:or)?d|pwd|api_?key|access_?key|"
        r"private_?key|credential|auth_?key)[\w.\-]*['\"]?\s*(?::=|=|:|=>)\s*"
        r"[bru]?['\"]([^'\"\s]{16,})['\"]",
        group=1,
        entropy=True,
        needles=(
            "secret",
            "token",
            "passw",
            "pwd",
            "api_key",
            "apikey",
            "access_key",
            "accesskey",
            "private_key",
            "privatekey",
            "credential",
            "auth_key",
            "authkey",
        ),
        anchored=True,
    ),
)

ENV_KEYS = (
    "ANTHROPIC_API_KEY",
    "OPENAI_API_KEY",
    "GITHUB_TOKEN",
    "GH_TOKEN",
    "ACTIONS_RUNTIME_TOKEN",
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "SLACK_TOKEN",
    "KARMA_INPUT_ANTHROPIC_API_KEY",
    "KARMA_INPUT_OPENAI_API_KEY",
)
SECRET_NAME = re.compile(r"[A-Za-z0-9_]*_(?:API_KEY|TOKEN|SECRET|PASSWORD)")
"""A variable whose value is a secret by its name alone (matched whole, any case)."""
MIN_SECRET_LENGTH = 8
"""Shorter values (`1`, `true`, a port) would redact ordinary text and protect nothing."""
ENTROPY_THRESHOLD = 3.5


def shannon_entropy(value: str) -> float:
    counts = Counter(value)
    return -sum(n / len(value) * math.log2(n / len(value)) for n in counts.values())


def matches(
    text: str, patterns: tuple[Pattern, ...] = PATTERNS, threshold: float = ENTROPY_THRESHOLD
) -> Iterator[tuple[Pattern, int, int]]:
    """(pattern, start, end) of each secret value, most specific pattern first, no overlap."""
    taken: list[tuple[int, int]] = []
    lowered: str | None = None
    for pattern in patterns:
        found: Iterator[re.Match[str]]
        if pattern.needles:
            if any(n.islower() for n in pattern.needles):
                # casefold, not lower: IGNORECASE also matches e.g. U+017F with "s"
                lowered = text.casefold() if lowered is None else lowered
                hay = lowered
            else:
                hay = text
            if not any(n in hay for n in pattern.needles):
                continue
            if pattern.anchored and len(hay) == len(text):
                found = _at_needles(pattern, text, hay)
            else:
                found = pattern.regex.finditer(text)
        else:
            found = pattern.regex.finditer(text)
        for match in found:
            start, end = match.span(pattern.group)
            value = match.group(pattern.group)
            if pattern.entropy and shannon_entropy(value) < threshold:
                continue
            if any(start < e and s < end for s, e in taken):
                continue
            taken.append((start, end))
            yield pattern, start, end


def _at_needles(pattern: Pattern, text: str, hay: str) -> Iterator[re.Match[str]]:
    """The regex's matches starting where a needle is, left to right, without overlap
    (what `finditer` finds for a regex that begins with one of the needles)."""
    starts: set[int] = set()
    for needle in pattern.needles:
        at = hay.find(needle)
        while at >= 0:
            starts.add(at)
            at = hay.find(needle, at + 1)
    end = 0
    for at in sorted(starts):
        if at < end:
            continue
        match = pattern.regex.match(text, at)
        if match is not None:
            end = match.end()
            yield match


# -- the host's secrets ---------------------------------------------------------------------


def secret_env(environ: Mapping[str, str]) -> dict[str, str]:
    """name -> value of every secret variable of `environ` worth redacting."""
    found = {}
    for name, value in environ.items():
        if len(value) < MIN_SECRET_LENGTH:
            continue
        if name in ENV_KEYS or SECRET_NAME.fullmatch(name.upper()):
            found[name] = value
    return found


_host: Mapping[str, str] = {}
"""value -> name of every host secret seen so far, longest value first. Replaced, never
changed in place, so a reader in another thread never sees it half-built."""
_host_lock = threading.Lock()
_collected = False


def remember_host_secrets(environ: Mapping[str, str] | None = None) -> None:
    """Add the secret values of `environ` (default: the process's) to those redacted."""
    global _host, _collected
    found = secret_env(os.environ if environ is None else environ)
    with _host_lock:
        merged = dict(_host)
        for name, value in found.items():
            merged.setdefault(value, name)
        _host = dict(sorted(merged.items(), key=lambda item: -len(item[0])))
        _collected = True


def _host_secrets() -> Mapping[str, str]:
    if not _collected:
        remember_host_secrets()
    return _host


def host_secret_in(text: str) -> str | None:
    """The name of a host secret variable whose value occurs in `text`, if one does."""
    return next((name for value, name in _host_secrets().items() if value in text), None)


# -- redaction ---------------------------------------------------------------------------------


def redact(text: str, *, environ: Mapping[str, str] | None = None) -> str:
    """`text` with every credential replaced by `[REDACTED:<rule>]`.

    `environ` given: its secret values are redacted (instead of the host's collected ones).
    """
    if environ is None:
        values: Mapping[str, str] = _host_secrets()
    else:
        values = {v: k for k, v in sorted(secret_env(environ).items(), key=lambda i: -len(i[1]))}
    for value, name in values.items():
        if value in text:
            text = text.replace(value, f"[REDACTED:env.{name}]")
    spans = sorted(matches(text), key=lambda m: m[1], reverse=True)
    for pattern, start, end in spans:
        text = f"{text[:start]}[REDACTED:{pattern.rule}]{text[end:]}"
    return text


_SEP = "\x00"
"""Joins the strings of a structure so that one pass of the patterns sees them all."""


def redact_value(value: Any) -> Any:
    """A JSON-like structure (dicts, lists, tuples, strings) with every string redacted.

    The strings are redacted in one pass over their concatenation (a few regex scans
    instead of a few per string); keys are redacted too. Other values are kept as they are.
    """
    leaves: list[str] = []
    _collect(value, leaves)
    if not leaves:
        return value
    joined = _SEP.join(leaves)
    clean = redact(joined)
    if clean == joined:
        return value
    parts = clean.split(_SEP)
    if len(parts) != len(leaves) or any(_SEP in leaf for leaf in leaves):
        parts = [redact(leaf) for leaf in leaves]  # a match ran across two strings
    return _rebuild(value, iter(parts))


def redact_json(text: str) -> str:
    """JSON text with every string in it redacted (a text that is not JSON: as text).

    Redacting the decoded strings, not the text, also finds a secret that JSON escaping
    would hide (a quoted assignment, a value with a backslash or a quote).
    """
    try:
        value = json.loads(text)
    except ValueError:
        return redact(text)
    clean = redact_value(value)
    if clean is value:
        return text
    return json.dumps(clean, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _collect(value: Any, into: list[str]) -> None:
    if isinstance(value, str):
        into.append(value)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(key, str):
                into.append(key)
            _collect(item, into)
    elif isinstance(value, list | tuple):
        for item in value:
            _collect(item, into)


def _rebuild(value: Any, parts: Iterator[str]) -> Any:
    if isinstance(value, str):
        return next(parts)
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            new_key = next(parts) if isinstance(key, str) else key
            out[new_key] = _rebuild(item, parts)
        return out
    if isinstance(value, list):
        return [_rebuild(item, parts) for item in value]
    if isinstance(value, tuple):
        return tuple(_rebuild(item, parts) for item in value)
    return value
