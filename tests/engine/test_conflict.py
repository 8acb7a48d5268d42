"""Two parallel tasks edit the same line: the conflict is found before the build branch
moves, the second task is retried on the new branch with the conflict in its prompt, and
no conflict marker is ever committed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from karma.store import Store
from karma.testing.repos import git

pytestmark = pytest.mark.docker


def _edit(old: str, new: str, latency: float = 0.0) -> list[dict[str, Any]]:
    return [
        {"latency_s": latency, "tool_calls": [{"name": "edit_file", "arguments": {
            "path": "README.md", "old": old, "new": new}}]},
        {"tool_calls": [{"name": "finish", "arguments": {"summary": f"title: {new}"}}]},
    ]  # fmt: skip


def _task(task_id: str, files: list[str]) -> dict[str, Any]:
    return {"id": task_id, "title": f"Retitle {task_id}", "description": "Change the title.",
            "deps": [], "estimated_tokens": 3000, "kind": "docs", "files": files}  # fmt: skip


SCRIPT: dict[str, Any] = {"conversations": [
    {"match": {"tool": "submit_plan"}, "replies": [{"tool_calls": [{
        "name": "submit_plan",
        "arguments": {"tasks": [_task("a", ["README.md"]), _task("b", ["docs.md"])]}}]}]},
    {"match": {"user": ["Task a:"]}, "replies": _edit("# inventory\n", "# inventory (A)\n")},
    # b is slower, so a merges first; b's second attempt starts from a's title
    {"match": {"user": ["Task b:", "Attempt 2\n"]},
     "replies": _edit("# inventory (A)\n", "# inventory (A) (B)\n")},
    {"match": {"user": ["Task b:"]},
     "replies": _edit("# inventory\n", "# inventory (B)\n", latency=1.5)},
]}  # fmt: skip


def test_parallel_edits_of_one_line_conflict_then_heal(karma_build: Any, demo_repo: Path) -> None:
    code, result = karma_build(SCRIPT, "--no-gates", "--jobs", "2")
    assert code == 0, result
    tasks = {t["id"]: t for t in result["tasks"]}
    assert tasks["a"]["attempts"] == 1
    assert tasks["b"]["attempts"] == 2
    first = tasks["b"]["history"][0]
    assert first["status"] == "conflict" and first["pattern"] == "karma.merge_conflict"
    assert first["remediation"] == "retry_with_hint"
    readme = git(demo_repo, "show", f"{result['branch']}:README.md")
    assert readme.splitlines()[0] == "# inventory (A) (B)"
    history = git(demo_repo, "log", "-p", f"{result['base_commit']}..{result['branch']}")
    assert "<<<<<<<" not in history and ">>>>>>>" not in history
    assert len(git(demo_repo, "rev-list", f"{result['base_commit']}..{result['branch']}")
               .split()) == 2  # fmt: skip
    store = Store(demo_repo / ".karma" / "karma.db")
    second = next(c for c in store.model_calls(result["run_id"], "b") if c.attempt == 2)
    assert "Merge conflict in README.md" in second.request_json
