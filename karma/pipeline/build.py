"""The state of one build and the bookkeeping every task shares.

A `Build` holds what the tasks of a run share — the plan, the workspace and build
branch, the sandbox backend and image, the healer, the budget, the models — and keeps
the run record current as tasks start, spend and finish. It owns the live sandboxes so
that an interrupt can remove every container at once.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from karma.config import KarmaConfig
from karma.errors import WorkspaceError
from karma.events import EventBus
from karma.forecast import BudgetTracker
from karma.gates.secrets import redact
from karma.heal import Healer
from karma.home import DataRoots
from karma.ids import RunId, TaskId
from karma.layout import Placed, StackLayout
from karma.models.interface import ModelClient, Usage
from karma.models.recorded import ReplayModel
from karma.pipeline.recorder import RunRecorder
from karma.plan import Plan, Task
from karma.recipes import Stack
from karma.routed import RoutedPlan, Routing
from karma.sandbox import spec_from_config
from karma.sandbox.interface import Sandbox, SandboxBackend
from karma.store import Store
from karma.waiting import HumanInput
from karma.workspace import Workspace, Worktree

if TYPE_CHECKING:
    from karma.executor.remote import RemoteAttempts


@dataclass
class Build:
    run_id: RunId
    request: str
    config: KarmaConfig
    store: Store
    bus: EventBus
    workspace: Workspace
    branch: str
    base_commit: str
    routed: RoutedPlan
    layout: StackLayout
    """The repository's stacks as the base commit places them, each with its image."""
    backend: SandboxBackend
    healer: Healer
    budget: BudgetTracker
    model_factory: Callable[[str], ModelClient]
    context_text: str = ""
    data: DataRoots = field(default_factory=DataRoots.trusted)
    """The trusted data roots of the build, decided at its start (the user's checkout)."""
    human: HumanInput = field(default_factory=HumanInput)
    """The approvals and answers of humans a resumed run acts on (karma.waiting)."""
    remote: RemoteAttempts | None = None
    """Where attempts run when not here: the workers of a Dask cluster (`[executor]`)."""
    stop: threading.Event = field(default_factory=threading.Event)
    merge_lock: threading.Lock = field(default_factory=threading.Lock)
    _models: dict[str, ModelClient] = field(default_factory=dict)
    _sandboxes: dict[str, Sandbox] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _tip: str | None = None
    record: RunRecorder = field(init=False)
    """The run's record: each fact into the store and onto the bus in one call."""

    def __post_init__(self) -> None:
        self.record = RunRecorder(self.store, self.bus, self.run_id)

    @property
    def stack(self) -> Stack:
        """The primary stack (the root's, or the first placed)."""
        return self.layout.primary.stack

    @property
    def image(self) -> str:
        return self.layout.primary.image

    def placed(self, task_id: TaskId) -> Placed:
        """The stack a task runs on: the one most of its planned files belong to."""
        task = self.plan.by_id.get(task_id)
        return self.layout.for_paths(task.files if task else ())

    @property
    def plan(self) -> Plan:
        return self.routed.plan

    @property
    def routing(self) -> Mapping[TaskId, Routing]:
        return self.routed.routing

    # -- git ------------------------------------------------------------------------------

    def tip(self) -> str:
        """The build branch's head. KARMA is its only writer (under `merge_lock`), so it is
        read from git once and then kept as integration moves it."""
        if self._tip is None:
            self._tip = self.workspace.rev(self.branch)
            assert self._tip is not None, f"build branch {self.branch} is missing"
        return self._tip

    def moved(self, commit: str) -> None:
        self._tip = commit

    def work_branch(self, name: str) -> str:
        return f"karma-work/{self.run_id}/{name}"

    def retire_worktree(self, worktree: Worktree, *, keep: bool, stage: bool = True) -> None:
        """Remove an attempt's worktree; a failed attempt's branch stays for salvage, with
        its work staged unless `stage` is off (a worktree past its size limit)."""
        if keep:
            work = None
            try:
                if stage:
                    self.workspace.changed_files(worktree)
                    work = self.workspace.commit(
                        worktree, "salvage: unfinished attempt", {"Karma-Run": self.run_id}
                    )
            except WorkspaceError as exc:
                # Refused (a nested repository) or failed: git leaves the tree alone and
                # it stays on disk, so nothing the attempt did is lost.
                self.workspace.create_branch(worktree.branch, worktree.base)
                self.bus.emit("log", self.run_id, message=self.redact(
                    f"attempt work kept in {worktree.path}, not committed: {exc}"))  # fmt: skip
                return
            self.workspace.create_branch(worktree.branch, work or worktree.base)
        self.workspace.remove_worktree(worktree.path)

    # -- sandboxes and models ----------------------------------------------------------------

    def start_sandbox(
        self, task_id: str, path: Path, memory_factor: float, *, image: str | None = None
    ) -> Sandbox:
        spec = spec_from_config(self.config, image=image or self.image, workspace=path,
                                run_id=self.run_id, task_id=task_id)  # fmt: skip
        if memory_factor != 1.0:
            spec = replace(spec, memory_mb=int(spec.memory_mb * memory_factor))
        sandbox = self.backend.start(spec)
        with self._lock:
            self._sandboxes[sandbox.id] = sandbox
        return sandbox

    def release_sandbox(self, sandbox: Sandbox) -> None:
        with self._lock:
            self._sandboxes.pop(sandbox.id, None)
        sandbox.close()

    def interrupt(self) -> None:
        """Stop new work and remove every running container (Ctrl-C, daemon lost)."""
        self.stop.set()
        with self._lock:
            live = list(self._sandboxes.values())
        for sandbox in live:
            sandbox.close()

    def model(self, name: str) -> ModelClient:
        """The client of `provider:model`, made once per build."""
        with self._lock:
            if name not in self._models:
                self._models[name] = self.model_factory(name)
            return self._models[name]

    def warm_up(self) -> None:
        """Make every routed model's client now: a missing key or a bad script fails the
        build before any task starts, and no task pays for a client's set-up."""
        for name in sorted({route.model for route in self.routing.values()}):
            self.model(name)

    def model_for(self, name: str, task_id: TaskId, attempt: int) -> ModelClient:
        """The model of one attempt; a replayed build answers from that attempt's record."""
        model = self.model(name)
        if isinstance(model, ReplayModel):
            return model.scoped(task_id, attempt)
        return model

    # -- the record ---------------------------------------------------------------------------

    def next_attempt_number(self, task_id: TaskId) -> int:
        return self.store.last_attempt(self.run_id, task_id) + 1

    def select_tests(self) -> bool:
        """Whether per-task checks run only the tests a change reaches: the suite's last
        full run (the tests gate) took longer than `checks.full_suite_max_s`."""
        limit = self.config.checks.full_suite_max_s
        if limit == 0:
            return True
        took = self.store.last_gate_seconds("tests")
        return took is not None and took > limit

    def plan_notes(self, task: Task) -> str:
        lines = []
        for dep in task.deps:
            summary = self.store.done_summary(self.run_id, dep) or ""
            lines.append(f"- {dep} ({self.plan.by_id[dep].title}), done: {summary}".rstrip(": "))
        others = [t for t in self.plan.tasks if t.id != task.id and t.id not in task.deps]
        lines += [f"- {t.id} ({t.title}): another task's job" for t in others]
        return "\n".join(lines)

    def charge(self, task_id: TaskId, attempt_id: int, usage: Usage, cost: float) -> None:
        """An attempt's spend: into the record, and against the budget."""
        self.record.charge(task_id, attempt_id, usage, cost)
        self.budget.spend(cost)

    @staticmethod
    def redact(text: str) -> str:
        return redact(text)

    @staticmethod
    def redacted_json(value: object) -> str:
        return redact(json.dumps(value, sort_keys=True, default=str))
