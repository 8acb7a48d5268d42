"""The gates stage of a build (karma/pipeline/gates.py): what it makes before the suite
runs (real git, the scripted model, the sandbox backend that runs nothing)."""

from __future__ import annotations

from pathlib import Path

import yaml

from karma.config import load_config
from karma.engine import build
from karma.events import EventBus
from karma.models import get_model
from karma.models.interface import ModelClient
from karma.sandbox.fake import FakeBackend
from karma.scheduler import SynchronousExecutor
from karma.store import Store
from karma.testing.demo import REQUEST, demo_script, example_project
from karma.testing.repos import init_repo


def test_a_suite_that_does_not_review_makes_no_reviewer_client(tmp_path: Path) -> None:
    script = demo_script()
    for conv in script["conversations"]:
        for reply in conv["replies"]:
            reply.pop("latency_s", None)
    path = tmp_path / "script.yaml"
    path.write_text(yaml.safe_dump(script))
    repo = init_repo(tmp_path / "repo", source=example_project())
    models = {f"models.{tier}": f"scripted:{tier}" for tier in ("small", "medium", "large")}
    config = load_config(repo, flags={"providers.scripted.script": path, **models,
                                      "models.reviewer": "scripted:reviewer",
                                      "gates.overrides": {"review": {"enabled": False}}},
                         environ={})  # fmt: skip
    made: list[str] = []

    def factory(name: str) -> ModelClient:
        made.append(name)
        return get_model(name, config)

    with Store(repo / ".karma" / "karma.db") as store:
        result = build(REQUEST, repo=repo, config=config, store=store, bus=EventBus(),
                       model_factory=factory, backend=FakeBackend(), image=FakeBackend.IMAGE,
                       executor=SynchronousExecutor())  # fmt: skip
    assert result.gates and "review" not in {g["name"] for g in result.gates}, result.gates
    assert "scripted:reviewer" not in made and made, made
