"""`kill -9` at the worst moments, then `karma build --resume`: the same tree as an
uninterrupted run, no duplicate commits, no orphaned containers or worktrees."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import docker
import pytest
import yaml

from karma.store import Store
from karma.testing.demo import REQUEST, demo_config, demo_script, example_project
from karma.testing.repos import git, init_repo

pytestmark = pytest.mark.docker


def _karma(repo: Path, config: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "karma", "-C", str(repo), "--config", str(config), *args],
        env=env, capture_output=True, text=True, timeout=300,
    )


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, docker_engine: str) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("resume")
    script = base / "script.yaml"
    script.write_text(yaml.safe_dump(demo_script()))
    config = base / "karma.toml"
    config.write_text(demo_config().read_text())
    env = {**os.environ, "KARMA_SCRIPT": str(script), "KARMA_BASE_IMAGE": docker_engine}
    env.pop("KARMA_FAILPOINTS", None)
    reference = init_repo(base / "reference", source=example_project())
    done = _karma(reference, config, "build", "--json", "--no-gates", REQUEST, env=env)
    assert done.returncode == 0, done.stderr
    branch = json.loads(done.stdout)["branch"]
    return {"base": base, "config": config, "env": env,
            "tree": git(reference, "rev-parse", f"{branch}^{{tree}}")}


@pytest.mark.parametrize(
    "point", ["after_model_reply:3", "after_file_write:2", "after_commit:1", "during_merge:2"]
)
def test_kill_then_resume_gives_the_same_result(setup: dict[str, Any], point: str) -> None:
    name = point.split(":")[0]
    repo = init_repo(setup["base"] / f"repo-{name}", source=example_project())
    killed = _karma(repo, setup["config"], "build", "--json", "--no-gates", REQUEST,
                    env={**setup["env"], "KARMA_FAILPOINTS": point})
    assert killed.returncode == -9, killed.stderr[-2000:]
    store = Store(repo / ".karma" / "karma.db")
    run_id = store.runs()[0]["id"]
    store.close()

    resumed = _karma(repo, setup["config"], "build", "--resume", run_id, "--json",
                     "--no-gates", env=setup["env"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    result = json.loads(resumed.stdout)
    assert result["status"] == "succeeded" and result["run_id"] == run_id
    assert git(repo, "rev-parse", f"{result['branch']}^{{tree}}") == setup["tree"]
    tasks = git(repo, "log", "--format=%(trailers:key=Karma-Task,valueonly)",
                f"{result['base_commit']}..{result['branch']}").split()
    assert sorted(tasks) == ["cli", "csv_export", "docs", "low_stock"]  # no duplicates
    assert git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1
    assert git(repo, "branch", "--list", "karma-work/*") == ""
    client = docker.from_env()
    left = client.containers.list(all=True, filters={"label": f"karma.run_id={run_id}"})
    client.close()
    assert left == []
