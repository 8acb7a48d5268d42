"""A build whose agent fills its worktree: the attempt fails with the reason, its files
are never staged by host git, and the retry succeeds (real Docker, real git)."""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import pytest

from karma.store import Store
from karma.testing.demo import conversation, demo_script
from karma.testing.repos import git

pytestmark = pytest.mark.docker


def test_attempt_that_fills_its_worktree_fails_unstaged(
    karma_build: Any, demo_repo: Path, karma_config: Path
) -> None:
    with karma_config.open("a") as config:
        config.write("\n[agent]\nmax_worktree_mb = 5\n")
    script = demo_script()
    good = conversation(script, "csv_export")
    bad = copy.deepcopy(good)
    bad["name"] = "csv_export-fills-its-worktree"
    bad["match"] = {"user": ["Task csv_export:", "Attempt 1\n"]}
    fill = "truncate -s 100G dump.bin && dd if=/dev/zero of=big.bin bs=1M count=8 2>/dev/null"
    bad["replies"].insert(1, {"tool_calls": [{"name": "run", "arguments": {"command": fill}}]})
    script["conversations"].insert(0, bad)
    started = time.monotonic()
    code, result = karma_build(script, "--no-gates")
    assert code == 0, result
    assert time.monotonic() - started < 300  # git never read the 100 GB file
    task = next(t for t in result["tasks"] if t["id"] == "csv_export")
    assert task["status"] == "succeeded" and task["attempts"] == 2
    assert task["history"][0]["status"] == "failed"
    store = Store(demo_repo / ".karma" / "karma.db")
    first = store.attempts(result["run_id"], "csv_export")[0]
    assert "agent.max_worktree_mb" in first.summary, first
    fill_step = next(s for s in store.steps(result["run_id"], "csv_export") if s.tool == "run")
    assert fill_step.is_error and "this attempt fails" in fill_step.output
    for ref in git(demo_repo, "for-each-ref", "--format=%(refname)").split():
        files = git(demo_repo, "ls-tree", "-r", "--name-only", ref)
        assert "dump.bin" not in files and "big.bin" not in files, ref
