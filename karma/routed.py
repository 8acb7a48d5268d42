"""A plan with each task routed to a model: where each task runs and why, its cost, the
critical path, and the plan's output contract (`karma plan --json`, Mermaid, DOT)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from karma.config import Tier
from karma.ids import TaskId
from karma.plan import Plan


def critical_path(plan: Plan, weights: Mapping[TaskId, float]) -> tuple[TaskId, ...]:
    """The heaviest dependency chain (by `weights`, e.g. calibrated tokens)."""
    best: dict[TaskId, float] = {}
    via: dict[TaskId, TaskId | None] = {}
    for tid in plan.order:
        deps = plan.by_id[tid].deps
        parent = max(deps, key=best.__getitem__) if deps else None
        best[tid] = weights[tid] + (best[parent] if parent is not None else 0.0)
        via[tid] = parent
    if not best:
        return ()
    node: TaskId | None = max(plan.order, key=best.__getitem__)
    path: list[TaskId] = []
    while node is not None:
        path.append(node)
        node = via[node]
    return tuple(reversed(path))


@dataclass(frozen=True)
class Routing:
    """Where one task runs, and why (the reason is recorded with the task)."""

    calibrated_tokens: int
    tier: Tier
    model: str
    reason: str


@dataclass(frozen=True)
class RoutedPlan:
    plan: Plan
    routing: Mapping[TaskId, Routing]
    costs: Mapping[TaskId, float]
    """Expected USD per task at its tier's model (see karma/forecast.py)."""
    critical_path: tuple[TaskId, ...]
    estimated_cost_usd: float
    duration_s: float
    """Estimated wall time of the critical path."""
    notes: tuple[str, ...] = field(default=())
    """Forecast caveats, e.g. a model missing from the price table."""

    def contract(self) -> dict[str, Any]:
        """The JSON contract of `karma plan --format json` (README, "Plan JSON")."""
        tasks = []
        for task in self.plan.tasks:
            route = self.routing[task.id]
            tasks.append(
                {
                    "id": task.id,
                    "title": task.title,
                    "description": task.description,
                    "deps": list(task.deps),
                    "kind": task.kind,
                    "files": list(task.files),
                    "estimated_tokens": task.estimated_tokens,
                    "calibrated_tokens": route.calibrated_tokens,
                    "tier": route.tier,
                    "model": route.model,
                    "estimated_cost_usd": round(self.costs[task.id], 6),
                }
            )
        return {
            "request": self.plan.request,
            "tasks": tasks,
            "critical_path": list(self.critical_path),
            "estimated_cost_usd": round(self.estimated_cost_usd, 6),
            "generations": [list(gen) for gen in self.plan.generations],
        }


def _quote(text: str) -> str:
    return text.replace('"', "'")


def to_mermaid(routed: RoutedPlan) -> str:
    # Node names get a `t_` prefix: mermaid reserves words such as `end`.
    critical = set(routed.critical_path)
    lines = ["flowchart TD"]
    for task in routed.plan.tasks:
        route = routed.routing[task.id]
        label = f"{task.id}: {task.title}<br/>{route.tier} · {route.calibrated_tokens} tok"
        lines.append(f'    t_{task.id}["{_quote(label)}"]')
    lines.extend(f"    t_{dep} --> t_{task.id}" for task in routed.plan.tasks for dep in task.deps)
    if critical:
        lines.append("    classDef critical stroke:#d33,stroke-width:3px")
        lines.append(f"    class {','.join('t_' + tid for tid in routed.critical_path)} critical")
    return "\n".join(lines) + "\n"


def to_dot(routed: RoutedPlan) -> str:
    critical = set(routed.critical_path)
    lines = ["digraph plan {", "    rankdir=LR;", "    node [shape=box];"]
    for task in routed.plan.tasks:
        route = routed.routing[task.id]
        label = f"{task.id}\\n{_quote(task.title)}\\n{route.tier} {route.calibrated_tokens} tok"
        style = ', color="red", penwidth=2' if task.id in critical else ""
        lines.append(f'    "{task.id}" [label="{label}"{style}];')
    lines.extend(f'    "{dep}" -> "{task.id}";' for task in routed.plan.tasks for dep in task.deps)
    lines.append("}")
    return "\n".join(lines) + "\n"
