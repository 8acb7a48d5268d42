"""The nightly digest: what a night built, escalated and skipped, in Markdown, JSON and HTML.

Rendering only; `karma.nightly` runs the night and gathers the memory's trend. Spec
titles and reasons can carry model text, so they go through the same inert renderers
as the run reports.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from karma.events import iso
from karma.nightly import NightResult, SpecOutcome

# -- the digest --------------------------------------------------------------------------------


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0%}"


def digest_json(night: NightResult) -> dict[str, Any]:
    return {
        "started_at": iso(night.started_at),
        "finished_at": iso(night.finished_at),
        "budget_usd": night.budget_usd,
        "cost_usd": round(night.cost_usd, 6),
        "ok": night.ok,
        "specs": [asdict(s) for s in night.specs],
        "trend": night.trend,
        "patterns": night.patterns,
        "waiting": night.waiting,
        "expired": night.expired,
    }


def _groups(night: NightResult) -> Iterable[tuple[str, list[SpecOutcome]]]:
    order = [
        ("Built", {"succeeded"}),
        ("Escalated", {"escalated", "needs_approval"}),
        ("Failed", {"failed", "error", "interrupted", "budget_exceeded"}),
        ("Invalid specs", {"invalid"}),
        ("Skipped", {"skipped"}),
    ]
    for title, statuses in order:
        yield title, [s for s in night.specs if s.status in statuses]


def digest_markdown(night: NightResult) -> str:
    from karma.text.markdown import md_code, md_inline

    lines = [
        f"# KARMA nightly digest, {iso(night.started_at)[:10]}",
        "",
        f"Spent **${night.cost_usd:.4f}** of a ${night.budget_usd:.2f} budget; "
        f"{len(night.specs)} spec(s) in the queue; "
        f"{'all clean' if night.ok else 'something broke'}.",
        "",
    ]
    if not night.specs:
        lines += ["The queue was empty: nothing to build.", ""]
    for title, specs in _groups(night):
        if not specs:
            continue
        lines += [f"## {title}", ""]
        for s in specs:
            run = f" run {md_code(s.run_id, 60)}" if s.run_id else ""
            lines.append(
                f"- {md_code(s.file, 120)} {md_inline(s.title, 120)}{run} "
                f"${s.cost_usd:.4f}" + (f": {md_inline(s.reason, 400)}" if s.reason else "")
            )
        lines.append("")
    lines += _waiting_markdown(night)
    fa, rem = night.trend["first_attempt_success"], night.trend["remediation_success"]
    lines += [
        "## Memory",
        "",
        f"- first-attempt success: {_pct(fa['tonight']['rate'])} of {fa['tonight']['tasks']} "
        f"task(s) tonight, {_pct(fa['before']['rate'])} of {fa['before']['tasks']} before",
        f"- remediation success: {_pct(rem['tonight']['rate'])} of {rem['tonight']['count']} "
        f"tonight, {_pct(rem['before']['rate'])} of {rem['before']['count']} before",
        "",
    ]
    lines += ["## Patterns learned", ""]
    lines += [
        f"- {md_inline(p['failure_class'], 60)} ({md_code(p['signature'], 20)}, seen "
        f"{p['count']}x): {md_inline(p['example'], 200)}"
        for p in night.patterns
    ] or ["None new."]
    return "\n".join(lines).rstrip() + "\n"


def _waiting_markdown(night: NightResult) -> list[str]:
    from karma.text.markdown import md_code, md_inline

    if not night.waiting and not night.expired:
        return []
    lines = ["## Waiting for a human", ""]
    for w in night.waiting:
        spec = f" (spec {md_code(w['spec'], 120)})" if w["spec"] else ""
        lines.append(f"- run {md_code(w['run_id'], 60)}{spec} waits since {md_code(w['since'])} "
                     f"for {md_inline(w['what'], 500)}: "
                     + ", ".join(md_code(c, 200) for c in w["commands"]))  # fmt: skip
    lines += [
        f"- run {md_code(r, 60)}: rejected by karma, no decision within approval.timeout_h"
        for r in night.expired
    ]
    return [*lines, ""]


def digest_html(night: NightResult) -> str:
    from karma.report_html import CSS, Safe, badge, h, join

    sections = []
    for title, specs in _groups(night):
        if not specs:
            continue
        rows = join(
            h(
                "<tr><td><code>$f</code></td><td>$t</td><td>$st</td><td>$run</td>"
                "<td>$$$c</td><td>$r</td></tr>",
                f=s.file,
                t=s.title,
                st=badge(s.status),
                run=s.run_id or "",
                c=f"{s.cost_usd:.4f}",
                r=s.reason,
            )
            for s in specs
        )
        sections.append(
            h(
                "<h2>$title</h2><table><tr><th>spec</th><th>title</th><th>status</th>"
                "<th>run</th><th>cost</th><th>why</th></tr>$rows</table>",
                title=title,
                rows=rows,
            )
        )
    if night.waiting:
        rows = join(
            h(
                "<tr><td><code>$run</code></td><td>$spec</td><td>$since</td><td>$what</td>"
                "<td><code>$cmd</code></td></tr>",
                run=w["run_id"],
                spec=w["spec"] or "",
                since=w["since"],
                what=w["what"],
                cmd=" | ".join(w["commands"]),
            )
            for w in night.waiting
        )
        sections.append(
            h(
                "<h2>Waiting for a human</h2><table><tr><th>run</th><th>spec</th><th>since</th>"
                "<th>what</th><th>to decide</th></tr>$rows</table>",
                rows=rows,
            )
        )
    empty = Safe("<p>The queue was empty: nothing to build.</p>") if not night.specs else Safe("")
    md = digest_markdown(night).split("## Memory", 1)[1]
    return h(
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'\"><title>KARMA nightly $day</title><style>$css</style>"
        "</head><body><h1>KARMA nightly $day</h1><p>Spent $$$cost of $$$budget.</p>$empty"
        "$sections<h2>Memory and patterns</h2><pre>$memory</pre></body></html>",
        day=iso(night.started_at)[:10],
        css=Safe(CSS),
        cost=f"{night.cost_usd:.4f}",
        budget=f"{night.budget_usd:.2f}",
        empty=empty,
        sections=join(sections),
        memory="## Memory" + md,
    )


def write_digest(night: NightResult, out_dir: Path) -> dict[str, str]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "md": out_dir / "digest.md",
        "html": out_dir / "digest.html",
        "json": out_dir / "digest.json",
    }
    paths["md"].write_text(digest_markdown(night), encoding="utf-8")
    paths["html"].write_text(digest_html(night), encoding="utf-8")
    paths["json"].write_text(json.dumps(digest_json(night), indent=2), encoding="utf-8")
    night.digest = {k: str(v) for k, v in paths.items()}
    return night.digest
