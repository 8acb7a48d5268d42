"""The run report's pictures: the task DAG laid out by generation and the Gantt of attempts.

Both are inline SVG built through `karma.text.html.h`, so no task title or id is markup.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from karma.run_record import RunRecord
from karma.text.html import Safe, h, join
from karma.text.inert import plain

COLOURS = {
    "succeeded": "#2da44e",
    "passed": "#2da44e",
    "warning": "#d4a72c",
    "error": "#cf222e",
    "merged": "#2da44e",
    "escalated": "#8250df",
    "failed": "#cf222e",
    "conflict": "#d4a72c",
    "running": "#0969da",
    "skipped": "#8c959f",
    "pending": "#8c959f",
    "interrupted": "#d4a72c",
    "abandoned": "#8c959f",
    "infra": "#d4a72c",
}


def colour(status: object) -> str:
    return COLOURS.get(str(status), "#57606a")


# -- the DAG ---------------------------------------------------------------------------------------


def dag_svg(record: RunRecord) -> Safe:
    gens = record.generations()
    deps = record.deps()
    status: dict[str, str] = {t.id: t.status for t in record.tasks}
    titles: dict[str, str] = {t.id: t.title for t in record.tasks}
    w, hgt, gx, gy = 190, 46, 70, 22
    pos: dict[str, tuple[int, int]] = {}
    for col, gen in enumerate(gens):
        for row, task_id in enumerate(gen):
            pos[task_id] = (20 + col * (w + gx), 20 + row * (hgt + gy))
    width = 40 + max(1, len(gens)) * (w + gx) - gx
    height = 40 + max((len(g) for g in gens), default=1) * (hgt + gy) - gy
    parts: list[Safe] = []
    for task_id, ds in deps.items():
        for dep in ds:
            if dep in pos and task_id in pos:
                (x0, y0), (x1, y1) = pos[dep], pos[task_id]
                parts.append(
                    h(
                        '<path d="M$a $b C$c $b, $c $d, $e $d" class="edge" '
                        'marker-end="url(#arrow)"/>',
                        a=x0 + w,
                        b=y0 + hgt // 2,
                        c=(x0 + w + x1) // 2,
                        d=y1 + hgt // 2,
                        e=x1,
                    )
                )
    for task_id, (x, y) in pos.items():
        parts.append(
            h(
                '<g class="node"><title>$full</title>'
                '<rect x="$x" y="$y" width="$w" height="$hh" rx="6" '
                'fill="#fff" stroke="$c" stroke-width="2"/>'
                '<rect x="$x" y="$y" width="6" height="$hh" '
                'fill="$c"/><text x="$tx" y="$ty1" class="nid">$id</text>'
                '<text x="$tx" y="$ty2" class="ntitle">$title</text></g>',
                full=f"{task_id}: {titles.get(task_id, '')} ({status.get(task_id, 'pending')})",
                x=x,
                y=y,
                w=w,
                hh=hgt,
                c=colour(status.get(task_id)),
                tx=x + 14,
                ty1=y + 19,
                ty2=y + 36,
                id=plain(task_id, 26),
                title=plain(titles.get(task_id, ""), 28),
            )
        )
    return h(
        '<svg xmlns="http://www.w3.org/2000/svg" width="$w" height="$h" '
        'viewBox="0 0 $w $h" role="img" aria-label="task DAG"><defs><marker id="arrow" '
        'viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto"><path d="M0 0 L10 5 L0 10 z" fill="#57606a"/></marker></defs>'
        "$body</svg>",
        w=width,
        h=height,
        body=join(parts),
    )


# -- the timeline ------------------------------------------------------------------------------


def _lane(bar: Mapping[str, Any]) -> tuple[str, str]:
    return str(bar.get("worker") or ""), str(bar["task"])


def gantt_svg(bars: Sequence[Mapping[str, Any]]) -> Safe:
    if not bars:
        return Safe("<p>No attempt was recorded.</p>")
    # One lane per task; on a cluster, per worker and task, grouped by worker.
    lanes = sorted(dict.fromkeys(_lane(b) for b in bars), key=lambda lane: lane[0])
    span = max(max(float(b["end_s"]) for b in bars), 1e-3)
    left, right, row_h, top = 170, 30, 26, 28
    width = 900
    scale = (width - left - right) / span
    parts: list[Safe] = []
    for i in range(6):
        x = left + (width - left - right) * i / 5
        parts.append(
            h(
                '<line x1="$x" y1="$a" x2="$x" y2="$b" class="grid"/>'
                '<text x="$x" y="$t" class="tick">$label</text>',
                x=round(x, 1),
                a=top - 6,
                b=top + len(lanes) * row_h,
                t=top - 10,
                label=f"{span * i / 5:.1f}s",
            )
        )
    for row, (worker, task_id) in enumerate(lanes):
        y = top + row * row_h
        label = f"{worker} · {task_id}" if worker else task_id
        parts.append(h('<text x="8" y="$y" class="lane">$t</text>', y=y + 17, t=plain(label, 22)))
    for bar in bars:
        y = top + lanes.index(_lane(bar)) * row_h + 4
        x0 = left + float(bar["start_s"]) * scale
        bw = max(3.0, (float(bar["end_s"]) - float(bar["start_s"])) * scale)
        parts.append(
            h(
                '<g class="bar"><title>$tip</title>'
                '<rect x="$x" y="$y" width="$w" height="18" rx="3" '
                'fill="$c"/><text x="$tx" y="$ty" class="barlabel">#$n</text></g>',
                tip=(
                    f"{bar['task']} attempt {bar['attempt']}: {bar['status']} on {bar['model']} "
                    + (f"on worker {bar['worker']} " if bar.get("worker") else "")
                    + f"({bar['start_s']:.1f}s to {bar['end_s']:.1f}s)"
                ),
                x=round(x0, 1),
                y=y,
                w=round(bw, 1),
                c=colour(bar["status"]),
                tx=round(x0 + 4, 1),
                ty=y + 13,
                n=bar["attempt"],
            )
        )
    height = top + len(lanes) * row_h + 10
    return h(
        '<svg xmlns="http://www.w3.org/2000/svg" width="$w" height="$h" viewBox="0 0 $w $h" '
        'role="img" aria-label="timeline of attempts">$body</svg>',
        w=width,
        h=height,
        body=join(parts),
    )


# -- the page ----------------------------------------------------------------------------------
