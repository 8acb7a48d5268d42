"""Fuzz: generated replies that break the rules, through both real SDKs and the loopback
server, into real attempts (a real git repository, a real Docker sandbox running `run`).

Whatever the replies: no exception leaves the agent, nothing is written outside the
worktree, every model call is recorded, and every attempt ends in a status the runner
knows (never a provider error: a bad reply is the model's to correct). The seed is
printed; `KARMA_FUZZ_SEED=<seed>` replays a run. CI (`CI=true`) sends 10,000 replies
(about two minutes); a developer's run sends 240 unless `KARMA_FUZZ_REPLIES` says more.
"""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
import threading
from pathlib import Path
from typing import Any, get_args

import pytest

from karma.agent import AgentStatus, run_agent
from karma.config import AgentConfig, KarmaConfig
from karma.conversation import Brief
from karma.footprint import Footprint
from karma.models.recorded import CallRecorder
from karma.models.script import parse_script
from karma.sandbox import spec_from_config
from karma.sandbox.docker import DockerBackend
from karma.testing.model_server import ModelServer
from karma.testing.repos import init_repo
from karma.testing.unruly import ABSOLUTE, conversation
from karma.tools import Toolbox
from tests.conftest import IN_CI

pytestmark = pytest.mark.docker

MODELS = {"anthropic": "anthropic:claude-sonnet-4-5", "openai": "openai:gpt-5"}
REPLIES = int(os.environ.get("KARMA_FUZZ_REPLIES") or (10_000 if IN_CI else 240))
"""Replies in all, shared by the two providers."""
SEED = int(os.environ.get("KARMA_FUZZ_SEED") or random.SystemRandom().randrange(2**31))


def snapshot(root: Path, skip: Path) -> dict[str, str]:
    """Every path under `root` but `skip`, with a digest of what it holds."""
    found = {}
    for path in sorted(root.rglob("*")):
        if path == skip or skip in path.parents:
            continue
        kind = "link" if path.is_symlink() else "dir" if path.is_dir() else "file"
        data = hashlib.sha256(path.read_bytes()).hexdigest() if kind == "file" else kind
        found[str(path.relative_to(root))] = data
    return found


def reset(repo: Path) -> None:
    """Back to the first commit, whatever the last attempt left (the sandbox owns the
    worktree now: git is told it is safe)."""
    for args in (["reset", "-q", "--hard"], ["clean", "-qffdx"]):
        git = ["git", "-c", f"safe.directory={repo}", "-C", str(repo)]
        done = subprocess.run([*git, *args], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr


def one_attempt(
    client: Any, sandbox: Any, repo: Path, replies: list[dict[str, Any]], number: int
) -> tuple[Any, list[dict[str, Any]]]:
    """A real attempt on `repo`: (the result, the model calls it recorded)."""
    calls: list[dict[str, Any]] = []
    recorder = CallRecorder(client, lambda **row: calls.append(row), ("fuzz", "api", number))
    box = Toolbox(repo, lambda cmd, left: sandbox.exec(cmd, timeout_s=min(20.0, left)), 8000,
                  footprint=Footprint(repo, 50))  # fmt: skip
    limits = AgentConfig(max_steps=len(replies), max_wall_s=300)
    brief = Brief("api", "Create the API", "Add app/api.py.", "Add an API", number)
    return run_agent(brief, recorder, box, limits, stop=threading.Event()), calls


def test_generated_bad_replies_never_cost_more_than_the_attempt(
    docker_engine: str, model_server: ModelServer, make_client: Any, provider: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    seed = SEED + (0 if provider == "anthropic" else 1)
    print(f"fuzz seed {SEED} ({provider}: {seed}); replay with KARMA_FUZZ_SEED={SEED}")
    rng = random.Random(seed)
    repo = init_repo(tmp_path / "repo")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "keep.txt").write_text("must not change\n")
    before = snapshot(tmp_path, repo)
    config = KarmaConfig(sandbox={"memory_mb": 256, "pids_limit": 128, "tmpfs_mb": 32})
    spec = spec_from_config(config, image=docker_engine, workspace=repo, run_id="fuzz",
                            task_id="api")  # fmt: skip
    sandbox = DockerBackend().start(spec)
    client = make_client(MODELS[provider], max_retries=0).client
    sent, attempts, statuses = 0, 0, dict.fromkeys(get_args(AgentStatus), 0)
    try:
        while sent < REPLIES // 2:
            replies = conversation(rng, rng.randrange(2, 10))
            model_server.set_script(parse_script({"conversations": [{"replies": replies}]}))
            reset(repo)
            result, calls = one_attempt(client, sandbox, repo, replies, attempts + 1)
            where = f"seed {SEED}, {provider} attempt {attempts}: {replies!r:.2000}"
            assert result.status in statuses, where
            assert result.status != "provider_error", f"{result.detail}; {where}"
            assert len(calls) == result.steps and all(c["reply_json"] for c in calls), where
            assert snapshot(tmp_path, repo) == before, f"a write outside the worktree; {where}"
            assert not Path(ABSOLUTE).exists(), where
            statuses[result.status] += 1
            sent += len(calls)
            attempts += 1
    finally:
        sandbox.close()
    print(f"{provider}: {sent} replies in {attempts} attempts: {statuses}")
    assert statuses["finished"] > 0
