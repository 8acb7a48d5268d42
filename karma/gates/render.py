"""A suite result as text (terminal), Markdown (PR comment, step summary), JSON or SARIF.

Every format is redacted: a credential the secrets gate found is named, never shown.
"""

from __future__ import annotations

import json
from typing import Literal

from karma.gates.sarif import to_sarif
from karma.gates.suite import SuiteResult
from karma.text.redact import redact

Format = Literal["text", "json", "sarif", "markdown"]
MARK = {"passed": "✓", "failed": "✗", "error": "!", "warning": "~", "skipped": "-"}


def render(result: SuiteResult, fmt: Format) -> str:
    if fmt == "json":
        return json.dumps(result.as_json(), indent=2)
    if fmt == "sarif":
        return json.dumps(to_sarif(result), indent=2)
    if fmt == "markdown":
        return _markdown(result)
    return _text(result)


def _where(path: str, line: int) -> str:
    return f"{path}:{line}" if path and line else (path or "-")


def _text(result: SuiteResult) -> str:
    lines = []
    for outcome in result.outcomes:
        gate = outcome.result
        kind = "blocking" if outcome.blocking else "warn-only"
        lines.append(
            f"{MARK[gate.status]} {gate.name:<9} {gate.status:<8} {gate.duration_s:6.2f}s  "
            f"({kind}) {redact(gate.summary)}"
        )
        for f in gate.findings:
            old = "" if f.new else " (pre-existing)"
            lines.append(
                f"    {f.severity:<8} {_where(f.path, f.line)}  [{f.rule}] {redact(f.message)}{old}"
            )
    verdict = result.status.upper()
    if result.needs_approval:
        verdict += " - needs approval: a critical path changed (see approval)"
    lines.append(f"gates {verdict} against base {result.base[:12]}")
    return "\n".join(lines)


def _markdown(result: SuiteResult) -> str:
    head = "passed" if result.status == "passed" else "failed"
    lines = [
        f"### KARMA gates: {head}" + (" (needs approval)" if result.needs_approval else ""),
        "",
        f"Base `{result.base[:12]}`",
        "",
        "| gate | status | blocking | time | summary |",
        "| --- | --- | --- | --- | --- |",
    ]
    for o in result.outcomes:
        g = o.result
        summary = redact(g.summary).replace("|", "\\|")
        lines.append(
            f"| {g.name} | {MARK[g.status]} {g.status} | {'yes' if o.blocking else 'no'} | "
            f"{g.duration_s:.2f}s | {summary} |"
        )
    for o in result.outcomes:
        if not o.result.findings:
            continue
        lines += ["", f"#### {o.result.name}", ""]
        for f in o.result.findings:
            old = " _(pre-existing)_" if not f.new else ""
            lines.append(
                f"- **{f.severity}** `{_where(f.path, f.line)}` `{f.rule}`: "
                f"{redact(f.message).replace(chr(10), ' ')}{old}"
            )
    return "\n".join(lines)
