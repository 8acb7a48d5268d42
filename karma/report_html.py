"""The HTML run report: one self-contained file (inline CSS and SVG, no script, no CDN).

Every value is put into markup through `h()` / `Safe` (`karma.text.html`). The DAG and the
Gantt of attempts are inline SVG (`karma.report_svg`), so the parallelism of the build
shows as overlapping bars.
"""

from __future__ import annotations

from collections.abc import Mapping

from karma.report_svg import COLOURS, colour, dag_svg, gantt_svg
from karma.run_record import RunRecord, TaskChange, max_parallel, share_text, timeline
from karma.text.html import Safe, esc, h, join
from karma.text.inert import plain

__all__ = ["COLOURS", "CSS", "Safe", "badge", "colour", "esc", "h", "join", "to_html"]

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;
color:#1f2328;max-width:1200px}h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;
border-bottom:1px solid #d0d7de;padding-bottom:4px;margin-top:28px}table{border-collapse:collapse;
margin:8px 0}th,td{border:1px solid #d0d7de;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f6f8fa}.status{display:inline-block;padding:1px 8px;border-radius:10px;color:#fff}
pre{background:#f6f8fa;padding:10px;overflow:auto;white-space:pre-wrap;max-height:420px}
.request{background:#f6f8fa;border-left:4px solid #0969da;padding:8px 12px;white-space:pre-wrap}
.edge{fill:none;stroke:#57606a;stroke-width:1.5}.nid{font:bold 12px monospace;fill:#1f2328}
.ntitle{font:12px sans-serif;fill:#57606a}.grid{stroke:#eaeef2}.tick{font:11px sans-serif;
fill:#57606a;text-anchor:middle}.lane{font:12px monospace;fill:#1f2328}.barlabel{font:10px
sans-serif;fill:#fff}.muted{color:#57606a}.totals td{font-weight:600}
.add{color:#1a7f37}.del{color:#cf222e}.hunk{color:#8250df}.meta{color:#57606a;font-weight:600}
pre.diff{white-space:pre;font:12px/1.4 ui-monospace,Menlo,monospace;max-height:600px}
details{margin:6px 0 14px}summary{cursor:pointer;color:#0969da}td.num{text-align:right}
"""


def badge(status: object) -> Safe:
    return h('<span class="status" style="background:$c">$s</span>', c=colour(status), s=status)


def _tasks_table(record: RunRecord) -> Safe:
    rows = [
        Safe(
            "<tr><th>task</th><th>status</th><th>tier / model</th><th>attempts</th>"
            "<th>tokens in / out</th><th>cache read</th><th>cost</th><th>commit</th></tr>"
        )
    ]
    for t in record.tasks:
        rows.append(
            h(
                '<tr><td><b>$id</b><br><span class="muted">$title</span></td><td>$st</td>'
                "<td>$tier<br>$model</td><td>$att</td><td>$ti / $to</td><td>$cache</td>"
                "<td>$$$cost</td><td><code>$commit</code></td></tr>",
                id=t.id,
                title=t.title,
                st=badge(t.status),
                tier=t.tier or "",
                model=t.model or "",
                att=t.attempts,
                ti=f"{t.tokens_in:,}",
                to=f"{t.tokens_out:,}",
                cache=share_text(record.cache_share(t.id)),
                cost=f"{float(t.cost_usd or 0):.4f}",
                commit=(t.commit_sha or "")[:10],
            )
        )
    tot = record.totals()
    rows.append(
        h(
            '<tr class="totals"><td>total</td><td>$ok of $n succeeded</td><td></td>'
            "<td>$att</td><td>$ti / $to</td><td>$cache</td><td>$$$cost</td><td></td></tr>",
            ok=tot["succeeded"],
            n=tot["tasks"],
            att=tot["attempts"],
            ti=f"{tot['tokens_in']:,}",
            to=f"{tot['tokens_out']:,}",
            cache=share_text(tot["cache_read_share"]),
            cost=f"{tot['cost_usd']:.4f}",
        )
    )
    return h("<table>$rows</table>", rows=join(rows))


def _attempts_table(record: RunRecord) -> Safe:
    rows = [
        Safe(
            "<tr><th>task</th><th>#</th><th>status</th><th>model</th><th>class</th>"
            "<th>remediation</th><th>summary</th><th>cost</th></tr>"
        )
    ]
    for a in record.attempts:
        rows.append(
            h(
                "<tr><td>$task</td><td>$n</td><td>$st</td><td>$model</td><td>$cls</td>"
                "<td>$rem</td><td>$summary</td><td>$$$cost</td></tr>",
                task=a.task_id,
                n=a.number,
                st=badge(a.status),
                model=a.model or "",
                cls=a.failure_class or "",
                rem=a.remediation or "",
                summary=plain(a.summary or "", 400),
                cost=f"{float(a.cost_usd or 0):.4f}",
            )
        )
    return h("<table>$rows</table>", rows=join(rows))


def _gates(record: RunRecord) -> Safe:
    if not record.gates:
        return Safe("<p>No gate ran.</p>")
    rows = [
        Safe(
            "<tr><th>gate</th><th>status</th><th>blocking</th><th>time</th><th>result</th>"
            "<th>findings</th></tr>"
        )
    ]
    for g in record.gates:
        findings = [
            h(
                "<li><code>$rule</code> $sev $where: $msg</li>",
                rule=f.get("rule", ""),
                sev=f.get("severity", ""),
                msg=plain(f.get("message", ""), 1000),
                where=f"{f.get('path', '')}:{f.get('line', '')}" if f.get("path") else "",
            )
            for f in g["findings"][:50]
        ]
        rows.append(
            h(
                "<tr><td>$n</td><td>$st</td><td>$b</td><td>$d s</td><td>$sum</td>"
                "<td><ul>$f</ul></td></tr>",
                n=g["name"],
                sum=plain(g.get("summary") or "", 400),
                st=badge(g["status"]),
                b="yes" if g["blocking"] else "no",
                d=f"{float(g['duration_s'] or 0):.1f}",
                f=join(findings),
            )
        )
    return h("<table>$rows</table>$tests", rows=join(rows), tests=_tests_counts(record))


def _diff_lines(diff: str) -> Safe:
    """A diff as escaped lines, each coloured by its kind (no script, classes only)."""
    kinds = (("+++", "meta"), ("---", "meta"), ("diff ", "meta"), ("@@", "hunk"),
             ("+", "add"), ("-", "del"))  # fmt: skip
    lines = []
    for line in plain(diff).split("\n"):
        kind = next((k for prefix, k in kinds if line.startswith(prefix)), "")
        lines.append(h('<span class="$k">$l</span>', k=kind, l=line) if kind else esc(line))
    return Safe("\n".join(lines))


def _changes(record: RunRecord, changes: Mapping[str, TaskChange]) -> Safe:
    """Per task: the files with lines added and removed, and the diff itself, collapsed."""
    if not changes:
        return Safe('<p class="muted">No change recorded (or the repository was not at hand).</p>')
    parts: list[Safe] = []
    for t in record.tasks:
        change = changes.get(str(t.id))
        if change is None:
            continue
        added = sum(a for _, a, _ in change.files)
        removed = sum(r for _, _, r in change.files)
        row = (
            '<tr><td><code>$p</code></td><td class="num add">+$a</td>'
            '<td class="num del">-$r</td></tr>'
        )
        rows = join(h(row, p=path, a=a, r=r) for path, a, r in change.files)
        note = " (truncated: the whole diff is on the branch)" if change.truncated else ""
        parts.append(
            h(
                '<h3>$id <span class="muted">$title</span></h3><p>$n file(s), '
                '<span class="add">+$a</span> <span class="del">-$r</span></p>'
                "<table><tr><th>file</th><th>added</th><th>removed</th></tr>$rows</table>"
                '<details><summary>diff$note</summary><pre class="diff">$diff</pre></details>',
                id=t.id,
                title=t.title,
                n=len(change.files),
                a=added,
                r=removed,
                rows=rows,
                note=note,
                diff=_diff_lines(change.diff),
            )
        )
    return join(parts)


def _tests_counts(record: RunRecord) -> Safe:
    """The tests gate's counts, when it ran."""
    tests = next((g for g in reversed(record.gates) if g["name"] == "tests"), None)
    counts = tests.get("counts") if tests else None
    if not counts:
        return Safe("")
    cells = join(
        h("<td>$v</td>", v="-" if counts.get(k) is None else counts.get(k))
        for k in ("tests", "passed", "failures", "errors", "skipped", "base_tests")
    )
    return h(
        "<h3>Tests</h3><table><tr><th>collected</th><th>passed</th><th>failed</th>"
        "<th>errors</th><th>skipped</th><th>base collected</th></tr><tr>$c</tr></table>",
        c=cells,
    )


def _escalations(record: RunRecord) -> Safe:
    if not record.escalations:
        return Safe("<p>None.</p>")
    return join(
        h(
            "<h3>$task</h3><p><b>What a human must do:</b> $reason</p><pre>$report</pre>",
            task=e["task_id"],
            reason=e["reason"],
            report=plain(e["report_md"], 20000),
        )
        for e in record.escalations
    )


def _human(record: RunRecord) -> Safe:
    """What the run waits for, and who approved, rejected or answered what, and when."""
    from karma.waiting import describe

    if not record.human:
        return Safe("<p>Nothing waits; no decision was asked for.</p>")
    return h("<ul>$items</ul>", items=join(h("<li>$i</li>", i=describe(x)) for x in record.human))


PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy"
 content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>KARMA run $run_id</title><style>$css</style></head><body>
<h1>KARMA run $run_id $status</h1>
<p class="muted">branch <code>$branch</code> · base <code>$base</code> · head <code>$head</code> ·
started $created · finished $finished · cost $$$cost$forecast · $calls model calls</p>
$reason
<h2>Request</h2><div class="request">$request</div>
<h2>Plan</h2><div id="dag">$dag</div>
<h2>Timeline</h2><p class="muted">Attempts on one clock; overlapping bars ran in parallel
(at most $parallel at once).</p><div id="timeline">$gantt</div>
<h2>Tasks</h2>$tasks
<h2>Changes</h2>$changes
<h2>Attempts</h2>$attempts
<h2>Gates</h2>$gates
<h2>Escalations</h2>$escalations
<h2>Humans in the loop</h2>$human
</body></html>
"""


def to_html(record: RunRecord, changes: Mapping[str, TaskChange] | None = None) -> str:
    r = record.run
    forecast = record.plan.get("estimated_cost_usd")
    against = f" (forecast ${float(forecast):.4f})" if isinstance(forecast, (int, float)) else ""
    bars = timeline(record)
    reason = h("<p><b>Reason:</b> $r</p>", r=r.reason) if r.reason else Safe("")
    return h(
        PAGE,
        run_id=record.run_id,
        status=badge(r.status),
        css=Safe(CSS),
        branch=r.branch or "-",
        base=(r.base_commit or "")[:12],
        head=(r.head_commit or "")[:12],
        created=r.created_at,
        finished=r.finished_at or "-",
        cost=f"{record.totals()['cost_usd']:.4f}",
        forecast=against,
        calls=len(record.calls),
        reason=reason,
        request=plain(r.request, 20000),
        dag=dag_svg(record),
        parallel=max_parallel(bars),
        gantt=gantt_svg(bars),
        tasks=_tasks_table(record),
        changes=_changes(record, changes or {}),
        attempts=_attempts_table(record),
        gates=_gates(record),
        escalations=_escalations(record),
        human=_human(record),
    )
