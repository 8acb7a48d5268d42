"""Run reports: one run of the record as JSON, Markdown, or a self-contained HTML page.

`load_run` reads everything a report shows from the store into a `RunRecord` (the
request, the plan, tasks and their attempts with failure classes and remediations, the
model calls' totals, gates and findings, escalations); the renderers never touch SQL.
HTML lives in `report_html.py`. Model and tool text is untrusted: it is redacted, stripped
of control sequences, and escaped for the format it lands in (`md_inline`, `md_block`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from karma.ids import RunId
from karma.run_record import (
    DIFF_LIMIT,
    RunRecord,
    TaskChange,
    load_run,
    max_parallel,
    parse_ts,
    task_changes,
    timeline,
)
from karma.store import Store
from karma.text.inert import plain
from karma.text.markdown import md_block, md_code, md_inline, mermaid_label
from karma.waiting import describe

Format = Literal["html", "md", "json"]
FORMATS: tuple[Format, ...] = ("html", "md", "json")

__all__ = [
    "DIFF_LIMIT",
    "FORMATS",
    "RunRecord",
    "TaskChange",
    "load_run",
    "max_parallel",
    "parse_ts",
    "task_changes",
    "timeline",
]

# -- JSON --------------------------------------------------------------------------------------


def to_json(record: RunRecord) -> dict[str, Any]:
    """The `karma report --format json` contract."""
    r = record.run
    return {
        "run_id": record.run_id,
        "status": r.status,
        "request": plain(r.request),
        "branch": r.branch,
        "base_commit": r.base_commit,
        "head_commit": r.head_commit,
        "created_at": r.created_at,
        "finished_at": r.finished_at,
        "reason": plain(r.reason or ""),
        "plan": record.plan,
        "tasks": [
            {
                "id": t.id,
                "title": plain(t.title),
                "kind": t.kind,
                "status": t.status,
                "tier": t.tier,
                "model": t.model,
                "attempts": t.attempts,
                "tokens_in": t.tokens_in,
                "tokens_out": t.tokens_out,
                "cache_read_share": record.cache_share(t.id),
                "cost_usd": round(float(t.cost_usd or 0.0), 6),
                "started_at": t.started_at,
                "finished_at": t.finished_at,
                "commit": t.commit_sha,
                "reason": plain(t.reason or ""),
                "attempt_log": [
                    {
                        "number": a.number,
                        "status": a.status,
                        "model": a.model,
                        "tier": a.tier,
                        "started_at": a.started_at,
                        "finished_at": a.finished_at,
                        "failure_class": a.failure_class,
                        "pattern_id": a.pattern_id,
                        "remediation": a.remediation,
                        "summary": plain(a.summary or "", 2000),
                        "tokens_in": a.tokens_in,
                        "tokens_out": a.tokens_out,
                        "cost_usd": round(float(a.cost_usd or 0.0), 6),
                    }
                    for a in record.attempts_of(t.id)
                ],
            }
            for t in record.tasks
        ],
        "gates": [
            {
                "name": g["name"],
                "status": g["status"],
                "blocking": bool(g["blocking"]),
                "duration_s": g["duration_s"],
                "findings": [
                    {k: plain(v, 2000) if isinstance(v, str) else v for k, v in f.items()}
                    for f in g["findings"]
                ],
            }
            for g in record.gates
        ],
        "escalations": [
            {
                "task_id": e["task_id"],
                "reason": plain(e["reason"]),
                "report_md": plain(e["report_md"], 20000),
            }
            for e in record.escalations
        ],
        "timeline": timeline(record),
        "totals": record.totals(),
    }


# -- Markdown ----------------------------------------------------------------------------------


def mermaid(record: RunRecord) -> str:
    ids = {task_id: f"t{i}" for i, task_id in enumerate(record.deps())}
    titles: dict[str, str] = {t.id: t.title for t in record.tasks}
    status: dict[str, str] = {t.id: t.status for t in record.tasks}
    lines = ["```mermaid", "graph LR"]
    for task_id, node in ids.items():
        label = mermaid_label(f"{task_id}: {titles.get(task_id, '')}")
        lines.append(f'  {node}["{label}"]:::{status.get(task_id, "pending")}')
    for task_id, deps in record.deps().items():
        lines += [f"  {ids[d]} --> {ids[task_id]}" for d in deps if d in ids]
    lines += [
        "  classDef succeeded fill:#d4f7dc,stroke:#1a7f37",
        "  classDef escalated fill:#fbe2f3,stroke:#8250df",
        "  classDef failed fill:#ffe0e0,stroke:#cf222e",
        "```",
    ]
    return "\n".join(lines)


def _task_table(record: RunRecord) -> list[str]:
    lines = [
        "| task | status | attempts | model | tokens (in/out) | cost |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for t in record.tasks:
        lines.append(
            f"| {md_inline(t.id, 60)} {md_inline(t.title, 80)} | {t.status} | "
            f"{t.attempts} | {md_inline(t.model or '', 60)} | "
            f"{t.tokens_in:,}/{t.tokens_out:,} | ${float(t.cost_usd or 0):.4f} |"
        )
    return lines


def _gate_lines(gates: Sequence[Mapping[str, Any]], cap: int = 20) -> list[str]:
    if not gates:
        return ["No gate ran."]
    lines = ["| gate | status | blocking | findings |", "| --- | --- | --- | --- |"]
    for g in gates:
        lines.append(
            f"| {md_inline(g['name'], 40)} | {md_inline(g['status'], 20)} | "
            f"{'yes' if g.get('blocking') else 'no'} | {len(g.get('findings') or [])} |"
        )
    lines.append("")
    findings = [(g["name"], f) for g in gates for f in g.get("findings") or []]
    for name, f in findings[:cap]:
        where = f"{f.get('path', '')}:{f.get('line', '')}" if f.get("path") else "-"
        lines.append(
            f"- **{md_inline(name, 40)}** {md_code(f.get('rule', ''), 80)} "
            f"{md_inline(where, 120)}: {md_inline(f.get('message', ''), 300)}"
        )
    if len(findings) > cap:
        lines.append(f"- … and {len(findings) - cap} more in the report")
    return lines


def _escalation_lines(escalations: Sequence[Mapping[str, Any]], limit: int) -> list[str]:
    lines = []
    for e in escalations:
        lines += [
            f"### Escalated: {md_inline(e['task_id'], 60)}",
            "",
            f"**What a human must do:** {md_inline(e['reason'], 500)}",
            "",
        ]
        if e.get("report_md"):
            lines += [
                "<details><summary>Escalation report</summary>",
                "",
                md_block(e["report_md"], limit),
                "",
                "</details>",
                "",
            ]
    return lines


def to_markdown(record: RunRecord) -> str:
    r, totals = record.run, record.totals()
    lines = [
        f"# KARMA run {md_inline(record.run_id, 80)}: {md_inline(r.status, 40)}",
        "",
        f"**Request:** {md_inline(r.request, 1000)}",
        "",
        f"Branch {md_code(r.branch or '-', 100)}, base {md_code((r.base_commit or '')[:12])},"
        f" head {md_code((r.head_commit or '')[:12])}; cost ${totals['cost_usd']:.4f}, "
        f"{totals['attempts']} attempt(s), {totals['model_calls']} model call(s).",
        "",
    ]
    if r.reason:
        lines += [f"**Reason:** {md_inline(r.reason, 500)}", ""]
    lines += ["## Plan", "", mermaid(record), "", "## Tasks", "", *_task_table(record), ""]
    for t in record.tasks:
        attempts = record.attempts_of(t.id)
        if not attempts:
            continue
        lines.append(f"### {md_inline(t.id, 60)}")
        for a in attempts:
            healed = (
                f", class {md_inline(a.failure_class, 60)}, remediation "
                f"{md_inline(a.remediation or '-', 80)}"
                if a.failure_class
                else ""
            )
            lines.append(
                f"- attempt {a.number}: {md_inline(a.status, 20)} on "
                f"{md_inline(a.model or '', 60)}{healed}. "
                f"{md_inline(a.summary or '', 200)}"
            )
        lines.append("")
    lines += ["## Gates", "", *_gate_lines(record.gates), ""]
    if record.escalations:
        lines += ["## Escalations", "", *_escalation_lines(record.escalations, 8000)]
    if record.human:
        lines += ["", "## Humans in the loop", ""]
        lines += [f"- {md_inline(describe(item), 600)}" for item in record.human]
    return "\n".join(lines).rstrip() + "\n"


def summary_markdown(result: Mapping[str, Any], store: Store | None = None) -> str:
    """The GitHub step summary: status first, the DAG, tasks, gates, escalations."""
    status = str(result.get("status", "unknown"))
    icon = {"succeeded": "✅", "passed": "✅", "escalated": "🙋"}.get(status, "❌")
    lines = [f"## {icon} KARMA: {md_inline(status, 40)}", ""]
    run_id = result.get("run_id")
    if run_id:
        lines.append(
            f"Run {md_code(run_id, 80)} on branch {md_code(result.get('branch') or '-', 100)}"
            f", cost ${float(result.get('cost_usd') or 0):.4f}."
        )
    if result.get("reason"):
        lines.append(f"**Why:** {md_inline(result['reason'], 1000)}")
    if result.get("report"):
        lines.append(f"Report: {md_code(result['report'], 200)} (in the artifacts).")
    lines.append("")
    record = None
    if store is not None and run_id and store.run(RunId(str(run_id))) is not None:
        record = load_run(store, str(run_id))
    if record is not None:
        lines += ["### Plan", "", mermaid(record), "", "### Tasks", "", *_task_table(record), ""]
    elif result.get("tasks"):
        lines += [
            "### Tasks",
            "",
            "| task | status | attempts | model | tokens (in/out) | cost |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for t in result["tasks"]:
            lines.append(
                f"| {md_inline(t.get('id'), 60)} | {md_inline(t.get('status'), 20)} | "
                f"{t.get('attempts', 0)} | {md_inline(t.get('model') or '', 60)} | "
                f"{t.get('tokens_in', 0):,}/{t.get('tokens_out', 0):,} | "
                f"${float(t.get('cost_usd') or 0):.4f} |"
            )
        lines.append("")
    lines += ["### Gates", "", *_gate_lines(result.get("gates") or []), ""]
    if record is not None and record.escalations:
        lines += ["### Escalations", "", *_escalation_lines(record.escalations, 20000)]
    return "\n".join(lines).rstrip() + "\n"


# -- writing -----------------------------------------------------------------------------------


def render(
    record: RunRecord, fmt: Format, *, changes: Mapping[str, TaskChange] | None = None
) -> str:
    if fmt == "json":
        return json.dumps(to_json(record), indent=2, ensure_ascii=False)
    if fmt == "md":
        return to_markdown(record)
    from karma.report_html import to_html

    return to_html(record, changes or {})


def write_run_report(
    store: Store, run_id: str, out_dir: Path, fmt: Format = "html", *, repo: Path | None = None
) -> Path:
    """Write `<out_dir>/<run-id>.<fmt>` and return its path (the engine's report); with
    `repo`, the HTML shows each task's change (files, lines, the diff) from its commit."""
    record = load_run(store, run_id)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{record.run_id}.{fmt}"
    changes = task_changes(repo, record) if repo is not None and fmt == "html" else {}
    path.write_text(render(record, fmt, changes=changes), encoding="utf-8")
    return path
