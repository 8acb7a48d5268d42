"""Run reports: one run of the record as JSON, Markdown, or a self-contained HTML page.

`load_run` reads everything a report shows from the store into a `RunRecord` (the
request, the plan, tasks and their attempts with failure classes and remediations, the
model calls' totals, gates and findings, escalations); the renderers never touch SQL.
HTML lives in `report_html.py`. Model and tool text is untrusted: it is redacted, stripped
of control sequences, and escaped for the format it lands in (`md_inline`, `md_block`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from karma.errors import UsageError
from karma.store import Row, Store
from karma.text.inert import plain
from karma.text.markdown import md_block, md_code, md_inline, mermaid_label
from karma.waiting import describe, summary

Format = Literal["html", "md", "json"]
FORMATS: tuple[Format, ...] = ("html", "md", "json")


@dataclass(frozen=True)
class RunRecord:
    run: Row
    plan: Mapping[str, Any]
    tasks: list[Row]
    attempts: list[Row]
    calls: list[Row]
    gates: list[Row]
    escalations: list[Row]
    human: list[Row] = field(default_factory=list)
    """What the run waits for and what humans decided (`karma.waiting.summary` rows)."""

    @property
    def run_id(self) -> str:
        return str(self.run["id"])

    def attempts_of(self, task_id: str) -> list[Row]:
        return [a for a in self.attempts if a["task_id"] == task_id]

    def deps(self) -> dict[str, list[str]]:
        known = {t["id"] for t in self.tasks}
        deps = {
            str(t["id"]): [str(d) for d in t.get("deps", [])] for t in self.plan.get("tasks", [])
        }
        for task_id in known:
            deps.setdefault(task_id, [])
        return deps

    def generations(self) -> list[list[str]]:
        """The plan's generations, or ones computed from the dependencies."""
        given = self.plan.get("generations")
        if given:
            return [[str(t) for t in gen] for gen in given]
        deps, done, gens = self.deps(), set[str](), []
        while len(done) < len(deps):
            gen = sorted(t for t, ds in deps.items() if t not in done and set(ds) <= done)
            if not gen:  # a cycle in a broken record: put the rest in one row
                gen = sorted(set(deps) - done)
            gens.append(gen)
            done |= set(gen)
        return gens

    def totals(self) -> dict[str, Any]:
        return {
            "tasks": len(self.tasks),
            "succeeded": sum(t["status"] == "succeeded" for t in self.tasks),
            "attempts": len(self.attempts),
            "model_calls": len(self.calls),
            "tokens_in": sum(int(t["tokens_in"] or 0) for t in self.tasks),
            "tokens_out": sum(int(t["tokens_out"] or 0) for t in self.tasks),
            "cost_usd": round(float(self.run["cost_usd"] or 0.0), 6),
        }


def load_run(store: Store, run_id: str) -> RunRecord:
    run = store.run(run_id)
    if run is None:
        prefix = run_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        matches = store.query(
            "SELECT id FROM runs WHERE id LIKE ? ESCAPE '\\' ORDER BY created_at DESC",
            (f"{prefix}%",),
        )
        if len(matches) != 1:
            raise UsageError(
                f"no run {run_id!r} in {store.path}", tip="`karma runs` lists the runs"
            )
        run = store.run(matches[0]["id"])
        assert run is not None
    plan: dict[str, Any] = {}
    if run["plan_json"]:
        try:
            plan = json.loads(run["plan_json"])
        except json.JSONDecodeError:
            plan = {}
    rid = run["id"]
    events = store.events(rid)
    # A gate's one-line result and counts travel in its `gate_finished` event, in the same
    # order as its rows (both are written as it finishes).
    finished: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        if event["kind"] == "gate_finished":
            data = json.loads(event["data_json"] or "{}")
            finished.setdefault(str(data.get("name")), []).append(data)
    gates = []
    for row in store.gate_results(rid):
        try:
            findings = json.loads(row["findings_json"] or "[]")
        except json.JSONDecodeError:
            findings = []
        seen = finished.get(row["name"]) or [{}]
        event_data = seen.pop(0) if len(seen) > 1 else seen[0]
        gates.append(
            {
                **row,
                "findings": findings if isinstance(findings, list) else [],
                "summary": str(event_data.get("summary") or ""),
                "counts": event_data.get("counts") or {},
            }
        )
    escalations = []
    for event in events:
        if event["kind"] == "task_escalated":
            data = json.loads(event["data_json"] or "{}")
            escalations.append(
                {
                    "task_id": event["task_id"],
                    "ts": event["ts"],
                    "reason": data.get("reason", ""),
                    "report_md": data.get("report_md", ""),
                    "report_json": data.get("report_json"),
                }
            )
    return RunRecord(
        run=run,
        plan=plan,
        tasks=store.tasks(rid),
        attempts=store.attempts(rid),
        calls=store.model_calls(rid),
        gates=gates,
        escalations=escalations,
        human=[summary(row) for row in store.pending(rid)],
    )


# -- timeline -----------------------------------------------------------------------------------


def parse_ts(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def timeline(record: RunRecord) -> list[dict[str, Any]]:
    """Bars of the Gantt: one per attempt (seconds from the run's start)."""
    bars: list[dict[str, Any]] = []
    starts = [parse_ts(a["started_at"]) for a in record.attempts]
    start = parse_ts(record.run["created_at"])
    known = [s for s in starts if s is not None]
    if known:
        start = min([*known, *([start] if start else [])])
    if start is None:
        return bars
    for attempt in record.attempts:
        a0, a1 = parse_ts(attempt["started_at"]), parse_ts(attempt["finished_at"])
        if a0 is None:
            continue
        end = a1 or a0
        bars.append(
            {
                "task": attempt["task_id"],
                "attempt": attempt["number"],
                "status": attempt["status"],
                "model": attempt["model"],
                "start_s": round((a0 - start).total_seconds(), 3),
                "end_s": round((end - start).total_seconds(), 3),
            }
        )
    return bars


def max_parallel(bars: Sequence[Mapping[str, Any]]) -> int:
    points = sorted(
        [(b["start_s"], 1) for b in bars] + [(b["end_s"], -1) for b in bars],
        key=lambda p: (p[0], p[1]),
    )
    best = now = 0
    for _, step in points:
        now += step
        best = max(best, now)
    return best


# -- JSON --------------------------------------------------------------------------------------


def to_json(record: RunRecord) -> dict[str, Any]:
    """The `karma report --format json` contract."""
    r = record.run
    return {
        "run_id": record.run_id,
        "status": r["status"],
        "request": plain(r["request"]),
        "branch": r["branch"],
        "base_commit": r["base_commit"],
        "head_commit": r["head_commit"],
        "created_at": r["created_at"],
        "finished_at": r["finished_at"],
        "reason": plain(r["reason"] or ""),
        "plan": record.plan,
        "tasks": [
            {
                "id": t["id"],
                "title": plain(t["title"]),
                "kind": t["kind"],
                "status": t["status"],
                "tier": t["tier"],
                "model": t["model"],
                "attempts": t["attempts"],
                "tokens_in": t["tokens_in"],
                "tokens_out": t["tokens_out"],
                "cost_usd": round(float(t["cost_usd"] or 0.0), 6),
                "started_at": t["started_at"],
                "finished_at": t["finished_at"],
                "commit": t["commit_sha"],
                "reason": plain(t["reason"] or ""),
                "attempt_log": [
                    {
                        "number": a["number"],
                        "status": a["status"],
                        "model": a["model"],
                        "tier": a["tier"],
                        "started_at": a["started_at"],
                        "finished_at": a["finished_at"],
                        "failure_class": a["failure_class"],
                        "pattern_id": a["pattern_id"],
                        "remediation": a["remediation"],
                        "summary": plain(a["summary"] or "", 2000),
                        "tokens_in": a["tokens_in"],
                        "tokens_out": a["tokens_out"],
                        "cost_usd": round(float(a["cost_usd"] or 0.0), 6),
                    }
                    for a in record.attempts_of(t["id"])
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
    titles = {t["id"]: t["title"] for t in record.tasks}
    status = {t["id"]: t["status"] for t in record.tasks}
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
            f"| {md_inline(t['id'], 60)} {md_inline(t['title'], 80)} | {t['status']} | "
            f"{t['attempts']} | {md_inline(t['model'] or '', 60)} | "
            f"{t['tokens_in']:,}/{t['tokens_out']:,} | ${float(t['cost_usd'] or 0):.4f} |"
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
        f"# KARMA run {md_inline(record.run_id, 80)}: {md_inline(r['status'], 40)}",
        "",
        f"**Request:** {md_inline(r['request'], 1000)}",
        "",
        f"Branch {md_code(r['branch'] or '-', 100)}, base {md_code((r['base_commit'] or '')[:12])},"
        f" head {md_code((r['head_commit'] or '')[:12])}; cost ${totals['cost_usd']:.4f}, "
        f"{totals['attempts']} attempt(s), {totals['model_calls']} model call(s).",
        "",
    ]
    if r["reason"]:
        lines += [f"**Reason:** {md_inline(r['reason'], 500)}", ""]
    lines += ["## Plan", "", mermaid(record), "", "## Tasks", "", *_task_table(record), ""]
    for t in record.tasks:
        attempts = record.attempts_of(t["id"])
        if not attempts:
            continue
        lines.append(f"### {md_inline(t['id'], 60)}")
        for a in attempts:
            healed = (
                f", class {md_inline(a['failure_class'], 60)}, remediation "
                f"{md_inline(a['remediation'] or '-', 80)}"
                if a["failure_class"]
                else ""
            )
            lines.append(
                f"- attempt {a['number']}: {md_inline(a['status'], 20)} on "
                f"{md_inline(a['model'] or '', 60)}{healed}. "
                f"{md_inline(a['summary'] or '', 200)}"
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
    if store is not None and run_id and store.run(str(run_id)) is not None:
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


@dataclass(frozen=True)
class TaskChange:
    """What one task's commit changed: per file, lines added and removed; the diff."""

    files: tuple[tuple[str, int, int], ...]
    diff: str
    truncated: bool = False


DIFF_LIMIT = 200_000
"""Characters of one task's diff kept in the report (the whole diff is on the branch)."""


def task_changes(repo: Path, record: RunRecord) -> dict[str, TaskChange]:
    """Each task's change, from its recorded commit against that commit's parent. Git runs
    with no external diff, no textconv and no hooks: the report never runs repo config."""
    changes: dict[str, TaskChange] = {}
    for task in record.tasks:
        sha = str(task.get("commit_sha") or "")
        if not re.fullmatch(r"[0-9a-f]{40}", sha):
            continue
        numstat = _git(repo, "diff", "--numstat", "--no-renames", "-z", f"{sha}^", sha)
        diff = _git(repo, "diff", "--no-renames", f"{sha}^", sha)
        if numstat is None or diff is None:
            continue
        files = []
        for entry in filter(None, numstat.split("\0")):
            added, removed, path = [*entry.split("\t", 2), "", ""][:3]
            files.append((path, _count(added), _count(removed)))
        changes[str(task["id"])] = TaskChange(
            tuple(files), diff[:DIFF_LIMIT], truncated=len(diff) > DIFF_LIMIT
        )
    return changes


def _count(field: str) -> int:
    """A numstat count; git writes "-" for a binary file."""
    return int(field) if field.isdigit() else 0


def _git(repo: Path, *args: str) -> str | None:
    import subprocess

    safe = ["-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false", "-C", str(repo)]
    options = ["--no-ext-diff", "--no-textconv", "--no-color"]
    command = ["git", *safe, args[0], *options, *args[1:]]
    try:
        done = subprocess.run(command, capture_output=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.decode("utf-8", "replace")
