"""The engine handed an executor: with the synchronous one, a build runs its tasks one at
a time, critical path first, in the same order every time (real git, the scripted model,
the sandbox backend that runs nothing)."""

from __future__ import annotations

from pathlib import Path

import yaml

from karma.config import load_config
from karma.engine import build
from karma.events import Event, EventBus
from karma.sandbox.fake import FakeBackend
from karma.scheduler import SynchronousExecutor
from karma.store import Store
from karma.testing.demo import REQUEST, demo_script, example_project
from karma.testing.repos import init_repo


def _started(tmp_path: Path, name: str) -> list[str | None]:
    script = demo_script()
    for conv in script["conversations"]:
        for reply in conv["replies"]:
            reply.pop("latency_s", None)
    path = tmp_path / "script.yaml"
    path.write_text(yaml.safe_dump(script))
    repo = init_repo(tmp_path / name, source=example_project())
    tiers = {f"models.{tier}": f"scripted:{tier}" for tier in ("small", "medium", "large")}
    config = load_config(repo, flags={"providers.scripted.script": path, **tiers}, environ={})
    heard: list[Event] = []
    bus = EventBus()
    bus.subscribe(heard.append)
    with Store(repo / ".karma" / "karma.db") as store:
        result = build(REQUEST, repo=repo, config=config, store=store, bus=bus, gates=False,
                       backend=FakeBackend(), image=FakeBackend.IMAGE,
                       executor=SynchronousExecutor())  # fmt: skip
    assert result.status == "succeeded", result
    kinds = [(e.kind, e.task_id) for e in heard if e.kind in ("task_started", "task_succeeded")]
    # one task at a time: each ends before the next starts
    assert [k for k, _ in kinds] == ["task_started", "task_succeeded"] * (len(kinds) // 2)
    return [task for kind, task in kinds if kind == "task_started"]


def test_a_synchronous_executor_runs_the_tasks_in_one_order(tmp_path: Path) -> None:
    first = _started(tmp_path, "one")
    assert first == _started(tmp_path, "two")
    assert sorted(first) == ["cli", "csv_export", "docs", "low_stock"]
