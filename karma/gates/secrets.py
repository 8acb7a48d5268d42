"""The secrets gate and `redact`, the one function that keeps credentials out of output.

The gate scans what a change adds (the diff against the base, new untracked files and
the commit messages since the base) for credentials: Anthropic, OpenAI, GitHub, AWS,
Slack, private keys and high-entropy values assigned to secret-looking names. A finding
blocks; its message names the kind and place, never the value.

`redact(text)` replaces every credential the same patterns find (and the values of the
provider keys in the environment) with `[REDACTED:<rule>]`. Logs, reports, commit
messages and model text go through it before they are written anywhere.
"""

from __future__ import annotations

import fnmatch
import math
import os
import re
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from karma.gates.change import git
from karma.gates.interface import (
    Finding,
    GateContext,
    GateResult,
    GateSettings,
    Status,
)


@dataclass(frozen=True)
class Pattern:
    rule: str
    title: str
    regex: re.Pattern[str]
    group: int = 0
    """The group holding the secret value (0: the whole match)."""
    entropy: bool = False
    """Only a value of high Shannon entropy counts (generic assignments)."""


def _p(rule: str, title: str, regex: str, group: int = 0, entropy: bool = False) -> Pattern:
    return Pattern(f"secrets.{rule}", title, re.compile(regex), group, entropy)


# Most specific first: an Anthropic key also looks like an OpenAI one.
PATTERNS: tuple[Pattern, ...] = (
    _p(
        "private-key",
        "private key",
        r"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY(?: BLOCK)?-----"
        r"(?:[\s\S]*?-----END (?:[A-Z]+ )?PRIVATE KEY(?: BLOCK)?-----)?",
    ),
    _p("anthropic-api-key", "Anthropic API key", r"\bsk-ant-[a-z]+\d*-[A-Za-z0-9_\-]{20,}"),
    _p(
        "openai-api-key",
        "OpenAI API key",
        r"\bsk-(?!ant-)(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}",
    ),
    _p("github-token", "GitHub token", r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_\w{22,})"),
    _p("aws-access-key-id", "AWS access key ID", r"\b(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}\b"),
    _p(
        "aws-secret-access-key",
        "AWS secret access key",
        r"(?i)aws_?secret_?(?:access_?)?key\W{0,4}[:=]\s*['\"]?([A-Za-z0-9/+=]{40})\b",
        group=1,
    ),
    _p("slack-token", "Slack token", r"\bxox[abposr]-[A-Za-z0-9\-]{10,}"),
    _p(
        "slack-webhook",
        "Slack webhook URL",
        r"https://hooks\.slack\.com/(?:services|workflows)/[A-Za-z0-9/_\-]{20,}",
    ),
    _p(
        "generic-high-entropy",
        "high-entropy value assigned to a secret-looking name",
        r"(?i)\b[\w.\-]*(?:secret|token|passw(?:or)?d|pwd|api_?key|access_?key|"
        r"private_?key|credential|auth_?key)[\w.\-]*['\"]?\s*(?::=|=|:|=>)\s*"
        r"[bru]?['\"]([^'\"\s]{16,})['\"]",
        group=1,
        entropy=True,
    ),
)

ENV_KEYS = (
    "ANTHROPIC_API_KEY",
    "OPENAI_API_KEY",
    "GITHUB_TOKEN",
    "GH_TOKEN",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "SLACK_TOKEN",
)
ENTROPY_THRESHOLD = 3.5


def shannon_entropy(value: str) -> float:
    counts = Counter(value)
    return -sum(n / len(value) * math.log2(n / len(value)) for n in counts.values())


def _matches(
    text: str, patterns: tuple[Pattern, ...], threshold: float
) -> Iterator[tuple[Pattern, int, int]]:
    """(pattern, start, end) of each secret value, most specific pattern first, no overlap."""
    taken: list[tuple[int, int]] = []
    for pattern in patterns:
        for match in pattern.regex.finditer(text):
            start, end = match.span(pattern.group)
            value = match.group(pattern.group)
            if pattern.entropy and shannon_entropy(value) < threshold:
                continue
            if any(start < e and s < end for s, e in taken):
                continue
            taken.append((start, end))
            yield pattern, start, end


def redact(text: str, *, environ: Mapping[str, str] | None = None) -> str:
    """`text` with every credential replaced by `[REDACTED:<rule>]`."""
    environ = os.environ if environ is None else environ
    for name in ENV_KEYS:
        value = environ.get(name, "")
        if len(value) >= 8 and value in text:
            text = text.replace(value, f"[REDACTED:env.{name}]")
    spans = sorted(_matches(text, PATTERNS, ENTROPY_THRESHOLD), key=lambda m: m[1], reverse=True)
    for pattern, start, end in spans:
        text = f"{text[:start]}[REDACTED:{pattern.rule}]{text[end:]}"
    return text


def added_lines(diff: str) -> Iterator[tuple[str, int, str]]:
    """(path, line number, text) of each line a unified diff adds."""
    path, line = "", 0
    for raw in diff.splitlines():
        if raw.startswith("+++ "):
            target = raw[4:]
            path = target[2:] if target.startswith("b/") else ""
        elif raw.startswith("@@"):
            match = re.search(r"\+(\d+)", raw)
            line = int(match.group(1)) if match else 0
        elif raw.startswith("+") and path:
            yield path, line, raw[1:]
            line += 1
        elif raw.startswith(" "):
            line += 1


class SecretsGate:
    name = "secrets"

    def run(self, ctx: GateContext, settings: GateSettings) -> GateResult:
        started = time.monotonic()
        timeout = settings.timeout_s
        threshold = float(settings.get("entropy_threshold", ENTROPY_THRESHOLD))
        extra = tuple(
            _p(f"custom.{name}", f"custom pattern {name}", regex)
            for name, regex in dict(settings.get("extra_patterns", {})).items()
        )
        patterns = extra + PATTERNS
        exclude = tuple(settings.get("exclude", ()))
        head = ctx.head or ""
        diff_args = ["diff", "--no-color", "--no-ext-diff", "-U0", ctx.base]
        if head:
            diff_args.append(head)
        diff = git(ctx, *diff_args, timeout=timeout)
        lines = list(added_lines(diff))
        if not head:
            untracked = git(
                ctx, "ls-files", "--others", "--exclude-standard", "-z", timeout=timeout
            )
            for rel in filter(None, untracked.split("\0")):
                try:
                    content = (ctx.repo / rel).read_text(encoding="utf-8")
                except (OSError, UnicodeDecodeError):
                    continue
                lines.extend((rel, n, text) for n, text in enumerate(content.splitlines(), 1))
        findings: list[Finding] = []
        for path, line, text in lines:
            if any(fnmatch.fnmatch(path, glob) for glob in exclude):
                continue
            for pattern, _, _ in _matches(text, patterns, threshold):
                findings.append(
                    Finding(pattern.rule, "error", path, line, f"{pattern.title} added")
                )
        log = git(
            ctx,
            "log",
            "--format=%H%x00%B%x1e",
            f"{ctx.base}..{head or 'HEAD'}",
            timeout=timeout,
        )
        for entry in filter(str.strip, log.split("\x1e")):
            sha, _, body = entry.strip().partition("\0")
            for pattern, _, _ in _matches(body, patterns, threshold):
                findings.append(
                    Finding(
                        pattern.rule,
                        "error",
                        "",
                        0,
                        f"{pattern.title} in commit message {sha[:12]}",
                    )
                )
        files = len({path for path, _, _ in lines})
        status: Status = "failed" if findings else "passed"
        return GateResult(
            self.name,
            status,
            tuple(findings),
            time.monotonic() - started,
            f"{len(findings)} credential(s) in {files} changed file(s)"
            if findings
            else f"no credentials in {files} changed file(s)",
        )
