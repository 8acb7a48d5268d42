"""`karma replay`: run a recorded build again from its recorded model replies.

No model is called: every reply comes from the run record (`model_calls`). The replay is
a new run from the same base commit; it reports each request that differs from the
recording and whether the replayed build branch ends with the same tree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from karma.config import KarmaConfig
from karma.engine import build
from karma.errors import UsageError
from karma.events import EventBus
from karma.ids import RunId
from karma.models.interface import ModelClient
from karma.models.recorded import ReplayModel
from karma.pipeline.result import BuildResult
from karma.store import Store
from karma.workspace import Workspace


@dataclass(frozen=True)
class ReplayReport:
    run_id: str
    replay: BuildResult
    same_tree: bool
    divergences: tuple[str, ...]
    task_changes: tuple[str, ...]

    @property
    def faithful(self) -> bool:
        return self.same_tree and not self.task_changes

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "replay_run_id": self.replay.run_id,
            "status": "same" if self.faithful else "diverged",
            "same_tree": self.same_tree,
            "task_changes": list(self.task_changes),
            "divergences": list(self.divergences),
            "branch": self.replay.branch,
        }


def replay(
    run_id: RunId, *, workspace: Workspace, config: KarmaConfig, store: Store, bus: EventBus
) -> ReplayReport:
    recorded = store.run(run_id)
    if recorded is None or not recorded.head_commit:
        raise UsageError(
            f"no finished run {run_id!r} to replay in {store.path}",
            tip="`karma runs` lists the runs",
        )
    divergences: list[str] = []
    models: dict[str, ReplayModel] = {}

    def factory(name: str) -> ModelClient:
        if name not in models:
            models[name] = ReplayModel(
                store, run_id, name=name, strict=False, divergences=divergences
            )
        return models[name]

    result = build(
        recorded.request,
        repo=workspace.root,
        config=config,
        store=store,
        bus=bus,
        model_factory=factory,
        gates=False,
        base=recorded.base_commit,
    )
    before = {t.id: t.status for t in store.tasks(run_id)}
    after = {t.id: t.status for t in result.tasks}
    changes = tuple(
        f"{task}: {before.get(task)} recorded, {after.get(task)} replayed"
        for task in sorted(set(before) | set(after))
        if before.get(task) != after.get(task)
    )
    same = workspace.tree(recorded.head_commit) == workspace.tree(result.head_commit)
    return ReplayReport(run_id, result, same, tuple(divergences), changes)
