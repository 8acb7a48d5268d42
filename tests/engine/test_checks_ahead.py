"""The checks run while the model thinks (`checks.ahead`), attacked through the real
path: real Docker sandboxes, real git, the scripted model.

What the host trusts of a run ahead is the tree it staged, never the model's tool calls:
a process the model leaves running in the sandbox that breaks a file once the checks have
passed ahead gets its change judged, because the tree staged at `finish` is not the one
the checks ran on.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from karma.store import Store
from karma.testing.demo import conversation, demo_script

pytestmark = pytest.mark.docker

AHEAD = "the checks ran while the model thought"


def _logs(repo: Path, run_id: str, task_id: str) -> list[str]:
    store = Store(repo / ".karma" / "karma.db")
    try:
        return [str(json.loads(e.data_json).get("message", "")) for e in store.events(run_id)
                if e.kind == "log" and e.task_id == task_id]  # fmt: skip
    finally:
        store.close()


def test_a_tasks_checks_ran_ahead_stand_for_the_tree_it_finished_with(
    karma_build: Any, demo_repo: Path
) -> None:
    code, result = karma_build(None, "--no-gates")
    assert code == 0, result
    logs = _logs(demo_repo, result["run_id"], "csv_export")
    assert any(AHEAD in line for line in logs), logs


def test_a_file_broken_behind_the_tools_back_after_the_checks_ran_ahead_is_caught(
    karma_build: Any, demo_repo: Path
) -> None:
    script = demo_script()
    good = conversation(script, "csv_export")
    bad = copy.deepcopy(good)
    bad["name"] = "csv_export-breaks-its-file-later"
    bad["match"] = {"user": ["Task csv_export:", "Attempt 1\n"]}
    breaker = ("(sleep 1; printf 'def to_csv(:\\n' > inventory/export.py) "
               ">/dev/null 2>&1 </dev/null &")  # fmt: skip
    writes = good["replies"][0]
    bad["replies"] = [
        {**writes, "tool_calls": [*writes["tool_calls"],
                                  {"name": "run", "arguments": {"command": breaker}}]},
        {**good["replies"][-1], "latency_s": 3.0},  # finish, once the file is broken
    ]  # fmt: skip
    script["conversations"].insert(0, bad)
    code, result = karma_build(script, "--no-gates")
    assert code == 0, result
    task = next(t for t in result["tasks"] if t["id"] == "csv_export")
    assert task["status"] == "succeeded" and task["attempts"] == 2, task
    first = task["history"][0]
    assert first["status"] == "failed", first
    store = Store(demo_repo / ".karma" / "karma.db")
    try:
        summary = store.attempts(result["run_id"], "csv_export")[0].summary
    finally:
        store.close()
    assert "check failed" in summary and "py_compile" in summary, summary
