"""The plan: what `submit_plan` may contain, how it is validated, and the task DAG it becomes.

A model's (or a user's) plan arrives as JSON and is checked in two passes. Pydantic
(`extra="forbid"`) checks the shape; then every rule a plan must keep is checked by hand,
so each broken rule becomes one exact sentence the planner can act on: ids unique and
well formed, dependencies known, not on oneself, no cycle (named), estimates within
bounds, paths inside the repository, at least one task and not too many. All errors are
collected, not just the first. A valid plan is a frozen `Plan` with its generations
(networkx `topological_generations`) and its likely merge conflicts (two tasks that
declare the same file with no path between them in the DAG). Routing and cost live in a
`RoutedPlan`, whose `contract()` is the `karma plan --format json` output.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import networkx as nx
from pydantic import BaseModel, ConfigDict, ValidationError

from karma.errors import PlanError
from karma.ids import TaskId
from karma.trailers import TASK_ID

TaskKind = Literal["code", "test", "docs", "config", "migration"]
KINDS: tuple[TaskKind, ...] = ("code", "test", "docs", "config", "migration")

ID_PATTERN = TASK_ID
"""Matched whole (`fullmatch`): a `$` would let `"a\n"` through into branch names and trailers."""
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
MAX_ERRORS_SHOWN = 25
"""A plan with thousands of broken tasks is answered with the first errors and a count."""


@dataclass(frozen=True)
class PlanLimits:
    """Bounds a plan must keep; the defaults are the documented contract."""

    max_tasks: int = 200
    """More tasks than this is not a plan but a to-do list: merge small steps."""
    min_tokens: int = 100
    """Below this an agent cannot even read the task."""
    max_tokens: int = 2_000_000
    """Above this one task is a project of its own: split it."""
    max_title: int = 200


DEFAULT_LIMITS = PlanLimits()

# -- the edge: submit_plan's input ---------------------------------------------------------


class _Edge(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


class TaskIn(_Edge):
    id: str
    """Unique; 1 to 40 of a-z, 0-9, '-', '_', starting with a letter or digit."""
    title: str
    """A short imperative title."""
    description: str = ""
    """What the coding agent must do, precise enough to work alone."""
    deps: list[str] = []
    """Ids of tasks that must be finished before this one starts."""
    estimated_tokens: int
    """Total tokens (input + output) the coding agent is expected to spend on the task."""
    kind: TaskKind
    files: list[str] = []
    """Paths, relative to the repository root, the task expects to create or change."""


class PlanIn(_Edge):
    tasks: list[TaskIn]


def submit_plan_schema() -> dict[str, Any]:
    """The JSON schema of the `submit_plan` tool's input, with no `$ref` to resolve.

    Inlined because some OpenAI-compatible local servers do not follow references.
    """
    schema = PlanIn.model_json_schema()
    task = schema.pop("$defs")["TaskIn"]
    schema["properties"]["tasks"]["items"] = task
    return schema


# -- the inside: a valid plan -------------------------------------------------------------------


@dataclass(frozen=True)
class Task:
    id: TaskId
    title: str
    description: str
    kind: TaskKind
    deps: tuple[TaskId, ...]
    files: tuple[str, ...]
    estimated_tokens: int

    def editable(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "description": self.description,
            "deps": list(self.deps),
            "kind": self.kind,
            "files": list(self.files),
            "estimated_tokens": self.estimated_tokens,
        }


@dataclass(frozen=True)
class Conflict:
    """Two tasks that may run in parallel and both declare `file`."""

    file: str
    first: TaskId
    second: TaskId

    def sentence(self) -> str:
        return (
            f"Tasks '{self.first}' and '{self.second}' both change '{self.file}' and neither "
            "depends on the other, so their branches would likely conflict when merged; "
            "add a dependency between them or merge them into one task."
        )


@dataclass(frozen=True)
class Plan:
    request: str
    tasks: tuple[Task, ...]
    generations: tuple[tuple[TaskId, ...], ...]
    """Tasks by topological generation: each depends only on earlier generations."""
    conflicts: tuple[Conflict, ...] = ()

    @cached_property
    def by_id(self) -> Mapping[TaskId, Task]:
        return {task.id: task for task in self.tasks}

    @property
    def order(self) -> tuple[TaskId, ...]:
        return tuple(tid for generation in self.generations for tid in generation)

    def graph(self) -> nx.DiGraph:
        """Edges run from a dependency to its dependent (execution order)."""
        graph = nx.DiGraph()
        graph.add_nodes_from(task.id for task in self.tasks)
        graph.add_edges_from((dep, task.id) for task in self.tasks for dep in task.deps)
        return graph

    def editable(self) -> dict[str, Any]:
        """The form `--out` saves and `--plan-file` reads back."""
        return {"request": self.request, "tasks": [task.editable() for task in self.tasks]}


class PlanInvalid(PlanError):
    """A plan broke the rules; `errors` holds one exact sentence per broken rule."""

    def __init__(self, errors: Sequence[str]) -> None:
        self.errors = tuple(errors)
        super().__init__(format_errors(self.errors))


def format_errors(errors: Sequence[str]) -> str:
    shown = [f"- {error}" for error in errors[:MAX_ERRORS_SHOWN]]
    if len(errors) > MAX_ERRORS_SHOWN:
        shown.append(f"- ... and {len(errors) - MAX_ERRORS_SHOWN} more errors")
    return "\n".join(shown)


def _pydantic_errors(exc: ValidationError, raw: Any) -> list[str]:
    raw_tasks = raw.get("tasks") if isinstance(raw, dict) else None
    errors = []
    for error in exc.errors():
        loc = list(error["loc"])
        where = "submit_plan input"
        if len(loc) >= 2 and loc[0] == "tasks" and isinstance(loc[1], int):
            index = loc[1]
            item = raw_tasks[index] if isinstance(raw_tasks, list) else None
            tid = item.get("id") if isinstance(item, dict) else None
            where = f"task '{tid}'" if isinstance(tid, str) else f"tasks[{index}]"
            loc = loc[2:]
        key = ".".join(str(part) for part in loc)
        if error["type"] == "extra_forbidden":
            errors.append(f"{where}: unknown key '{key}'.")
        elif error["type"] == "missing":
            errors.append(f"{where}: missing required key '{key}'.")
        else:
            prefix = f"{where}: {key}" if key else where
            errors.append(f"{prefix}: {error['msg']}.")
    return errors


def _check_path(tid: str, path: str, repo: Path | None) -> tuple[str | None, str]:
    """(the error, if any; the path normalised to a relative POSIX path)."""
    name = path.replace("\\", "/")
    if not name.strip():
        return f"Task '{tid}' lists an empty file path.", name
    if _CONTROL.search(name):
        return f"Task '{tid}' lists file {path!a}, with a control character.", name
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return (
            f"Task '{tid}' lists file '{path}', which is an absolute path; "
            "list paths relative to the repository root."
        ), name
    normal = posixpath.normpath(name)
    if normal == ".." or normal.startswith("../"):
        return f"Task '{tid}' lists file '{path}', which is outside the repository.", normal
    if ".git" in normal.split("/"):
        return f"Task '{tid}' lists file '{path}', which is inside .git.", normal
    if repo is not None:
        root = repo.resolve()
        if not (root / normal).resolve().is_relative_to(root):
            return (
                f"Task '{tid}' lists file '{path}', which resolves outside the repository."
            ), normal
    return None, normal


def _cycles(graph: nx.DiGraph) -> list[str]:
    """One named cycle per strongly connected component that has one."""
    sentences = []
    for component in nx.strongly_connected_components(graph):
        if len(component) < 2:
            continue
        edges = nx.find_cycle(graph.subgraph(component))
        # Graph edges run dep -> dependent; the sentence reads dependent -> dep.
        links = [f"'{dependent}' depends on '{dep}'" for dep, dependent in reversed(edges)]
        sentences.append(
            f"The dependencies form a cycle: {', '.join(links)}. Remove one of these "
            "dependencies or merge the tasks."
        )
    return sorted(sentences)


def parse_plan(
    data: Any, *, request: str, repo: Path | None = None, limits: PlanLimits = DEFAULT_LIMITS
) -> Plan:
    """Validate `submit_plan` input into a `Plan`; `PlanInvalid` lists every broken rule."""
    if not isinstance(data, dict):
        raise PlanInvalid(["The submit_plan input must be an object with a 'tasks' list."])
    raw_tasks = data.get("tasks")
    if isinstance(raw_tasks, list):
        if not raw_tasks:
            raise PlanInvalid(["The plan has no tasks; submit at least one task."])
        if len(raw_tasks) > limits.max_tasks:
            raise PlanInvalid(
                [
                    f"The plan has {len(raw_tasks)} tasks; at most {limits.max_tasks} are "
                    "allowed. Merge small steps into larger tasks."
                ]
            )
    try:
        spec = PlanIn.model_validate(data)
    except ValidationError as exc:
        raise PlanInvalid(_pydantic_errors(exc, data)) from None
    return _build_plan(spec.tasks, request=request, repo=repo, limits=limits)


def _build_plan(
    specs: Sequence[TaskIn], *, request: str, repo: Path | None, limits: PlanLimits
) -> Plan:
    errors: list[str] = []
    counts: dict[str, int] = {}
    for spec in specs:
        counts[spec.id] = counts.get(spec.id, 0) + 1
    for tid, count in counts.items():
        if count > 1:
            errors.append(f"Task id '{tid}' is used by {count} tasks; ids must be unique.")
    tasks: list[Task] = []
    for spec in specs:
        tid = spec.id
        if not ID_PATTERN.fullmatch(tid):
            shown = tid if tid.isascii() and tid.isprintable() else ascii(tid)[1:-1]
            errors.append(
                f"Task id '{shown}' is not valid: use 1 to 40 lowercase letters, digits, '-' "
                "or '_', starting with a letter or digit."
            )
        if not spec.title.strip():
            errors.append(f"Task '{tid}' has an empty title.")
        elif _CONTROL.search(spec.title):
            errors.append(
                f"Task '{tid}' has a title with a line break or control character; "
                "a title is one line of plain text (put details in the description)."
            )
        elif len(spec.title) > limits.max_title:
            errors.append(f"Task '{tid}' has a title over {limits.max_title} characters.")
        if not limits.min_tokens <= spec.estimated_tokens <= limits.max_tokens:
            errors.append(
                f"Task '{tid}' has estimated_tokens {spec.estimated_tokens}; it must be "
                f"between {limits.min_tokens} and {limits.max_tokens}."
            )
        deps: list[TaskId] = []
        for dep in dict.fromkeys(spec.deps):
            if dep == tid:
                errors.append(f"Task '{tid}' depends on itself.")
            elif dep not in counts:
                errors.append(f"Task '{tid}' depends on '{dep}', which is not a task in the plan.")
            else:
                deps.append(TaskId(dep))
        files: list[str] = []
        for path in dict.fromkeys(spec.files):
            problem, normal = _check_path(tid, path, repo)
            if problem:
                errors.append(problem)
            else:
                files.append(normal)
        tasks.append(
            Task(TaskId(tid), spec.title.strip(), spec.description.strip(), spec.kind,
                 tuple(deps), tuple(dict.fromkeys(files)), spec.estimated_tokens)
        )  # fmt: skip
    graph = nx.DiGraph()
    graph.add_nodes_from(task.id for task in tasks)
    graph.add_edges_from((dep, task.id) for task in tasks for dep in task.deps)
    try:
        generations = tuple(tuple(sorted(gen)) for gen in nx.topological_generations(graph))
    except nx.NetworkXUnfeasible:
        errors.extend(_cycles(graph))
        generations = ()
    if errors:
        raise PlanInvalid(errors)
    plan = Plan(request, tuple(tasks), generations)
    return Plan(request, plan.tasks, generations, find_conflicts(plan))


# -- analysis ---------------------------------------------------------------------------


def _ancestor_bits(plan: Plan) -> dict[TaskId, int]:
    """Each task's ancestors as a bitset over the task order (one OR per edge)."""
    index = {tid: i for i, tid in enumerate(plan.order)}
    ancestors: dict[TaskId, int] = {}
    for tid in plan.order:
        bits = 0
        for dep in plan.by_id[tid].deps:
            bits |= ancestors[dep] | (1 << index[dep])
        ancestors[tid] = bits
    return ancestors


def find_conflicts(plan: Plan, *, limit: int = 1000) -> tuple[Conflict, ...]:
    """Pairs of tasks declaring the same file with no path between them in the DAG."""
    owners: dict[str, list[TaskId]] = {}
    for task in plan.tasks:
        for path in task.files:
            owners.setdefault(path, []).append(task.id)
    shared = {path: tids for path, tids in owners.items() if len(tids) > 1}
    if not shared:
        return ()
    index = {tid: i for i, tid in enumerate(plan.order)}
    ancestors = _ancestor_bits(plan)
    found: list[Conflict] = []
    for path in sorted(shared):
        tids = shared[path]
        for i, first in enumerate(tids):
            for second in tids[i + 1 :]:
                ordered = ancestors[second] >> index[first] & 1 or (
                    ancestors[first] >> index[second] & 1
                )
                if not ordered:
                    found.append(Conflict(path, first, second))
                    if len(found) >= limit:
                        return tuple(found)
    return tuple(found)


# -- the output contract fed back: a saved plan as input ---------------------------------------


DERIVED_TASK_KEYS = frozenset({"calibrated_tokens", "tier", "model", "estimated_cost_usd"})
DERIVED_PLAN_KEYS = frozenset({"critical_path", "estimated_cost_usd", "generations"})


def strip_derived(data: Any) -> tuple[str | None, Any]:
    """Split a plan file (editable form or full contract) into its request and its tasks.

    Derived fields of the JSON contract are dropped: they are recomputed, never trusted.
    """
    if not isinstance(data, dict):
        return None, data
    body = {k: v for k, v in data.items() if k not in DERIVED_PLAN_KEYS}
    request = body.pop("request", None)
    tasks = body.get("tasks")
    if isinstance(tasks, list):
        body["tasks"] = [
            {k: v for k, v in item.items() if k not in DERIVED_TASK_KEYS}
            if isinstance(item, dict)
            else item
            for item in tasks
        ]
    return (request if isinstance(request, str) else None), body
