"""An agent that plants a nested git repository in its worktree (through `run`, in the
real sandbox): the host refuses to stage it, the attempt fails with the reason, the next
attempt is told, and no host git ever runs the nested configuration."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from karma.store import Store
from karma.testing.demo import conversation, demo_script

pytestmark = pytest.mark.docker


def _plant(marker: Path, how: str) -> str:
    evil = f"touch {marker}; cat"
    if how == "gitfile":  # a `.git` file pointing at a git dir of its own
        return (
            "mkdir -p vendor/lib/.evil/info vendor/lib/.evil/objects vendor/lib/.evil/refs && "
            "printf 'ref: refs/heads/main\\n' > vendor/lib/.evil/HEAD && "
            f"printf '[core]\\n\\tfsmonitor = {evil}\\n' > vendor/lib/.evil/config && "
            "printf 'gitdir: .evil\\n' > vendor/lib/.git && echo x > vendor/lib/x.txt"
        )
    return (  # a nested repository folder with an fsmonitor and a filter via info/attributes
        "mkdir -p vendor/.git/info vendor/.git/objects vendor/.git/refs && "
        "printf 'ref: refs/heads/main\\n' > vendor/.git/HEAD && "
        f"printf '[core]\\n\\tfsmonitor = {evil}\\n[filter \"x\"]\\n\\tclean = {evil}\\n' "
        "> vendor/.git/config && printf '* filter=x\\n' > vendor/.git/info/attributes && "
        "echo x > vendor/x.txt"
    )


@pytest.mark.parametrize("how", ["folder", "gitfile"])
def test_a_planted_nested_repository_is_refused_and_healed(
    karma_build: Any, demo_repo: Path, tmp_path: Path, how: str
) -> None:
    marker = tmp_path / "MARKER"
    script = demo_script()
    bad = copy.deepcopy(conversation(script, "csv_export"))
    bad["name"] = "csv_export-nested"
    bad["match"] = {"user": ["Task csv_export:", "Attempt 1\n"]}
    bad["replies"][0]["tool_calls"].append(
        {"name": "run", "arguments": {"command": _plant(marker, how)}}
    )
    script["conversations"].insert(0, bad)
    code, result = karma_build(script, "--no-gates")
    assert code == 0, result
    task = next(t for t in result["tasks"] if t["id"] == "csv_export")
    assert task["attempts"] == 2 and task["status"] == "succeeded"
    first = task["history"][0]
    assert first["status"] == "failed" and first["pattern"] == "karma.nested_repository"
    store = Store(demo_repo / ".karma" / "karma.db")
    attempts = [a for a in store.attempts(result["run_id"]) if a.task_id == "csv_export"]
    assert "nested git repository in the change: vendor" in attempts[0].summary
    calls = store.model_calls(result["run_id"], "csv_export")
    second = next(c for c in calls if c.attempt == 2)
    assert "nested" in second.request_json
    assert not marker.exists()
    # the refused attempt's files were kept on disk, untouched, not lost
    kept = list((demo_repo / ".karma" / "worktrees" / result["run_id"]).glob("csv_export-1"))
    assert kept and (kept[0] / "inventory" / "export.py").is_file()
