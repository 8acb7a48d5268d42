"""The secrets gate; `redact` and the patterns live in `karma.text.redact` (re-exported here).

The gate scans what a change adds (the diff against the base, new untracked files and
the commit messages since the base) for credentials: Anthropic, OpenAI, GitHub, AWS,
Slack, private keys and high-entropy values assigned to secret-looking names. A finding
blocks; its message names the kind and place, never the value. An untracked file is read
only when it is a regular file reached without a symlink (`files.read_text_beneath`); a
committed symlink is its target's path (git's blob), never the target's content.

`redact(text)` replaces every credential the same patterns find (and the values of the
host's secret variables) with `[REDACTED:<rule>]`; the run store and the event bus apply
it to everything they take, and logs, reports and commit messages go through it too.
"""

from __future__ import annotations

import fnmatch
import re
import time
from collections.abc import Iterator

from karma.gates.change import git
from karma.gates.files import read_text_beneath
from karma.gates.interface import (
    Finding,
    GateContext,
    GateResult,
    GateSettings,
    Status,
)
from karma.text.redact import (
    ENTROPY_THRESHOLD,
    ENV_KEYS,
    PATTERNS,
    Pattern,
    host_secret_in,
    redact,
    shannon_entropy,
)
from karma.text.redact import make_pattern as _p
from karma.text.redact import matches as _matches

__all__ = [
    "ENTROPY_THRESHOLD",
    "ENV_KEYS",
    "PATTERNS",
    "Pattern",
    "SecretsGate",
    "added_lines",
    "redact",
    "shannon_entropy",
]


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
                # Never through a symlink (`leak -> /root/.ssh/id_rsa`, /proc/self/environ):
                # a link's target is outside the change, and would be echoed into logs.
                content = read_text_beneath(ctx.repo, rel)
                if content is None:
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
            if variable := host_secret_in(text):  # a key of this host, whatever its shape
                findings.append(Finding(f"secrets.env.{variable}", "error", path, line,
                                        f"the value of the host's {variable} added"))  # fmt: skip
        log = git(
            ctx,
            "log",
            "--format=%H%x00%B%x1e",
            f"{ctx.base}..{head or 'HEAD'}",
            timeout=timeout,
        )
        for entry in filter(str.strip, log.split("\x1e")):
            sha, _, body = entry.strip().partition("\0")
            if variable := host_secret_in(body):
                findings.append(Finding(f"secrets.env.{variable}", "error", "", 0,
                                        f"the value of the host's {variable} in commit message "
                                        f"{sha[:12]}"))  # fmt: skip
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
