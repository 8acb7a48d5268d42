"""The model script of a two-task feature on a stack's example project (Go, Rust, Node),
and what its build must leave on the branch.

A planner that submits the plan, one conversation per task that writes its files, runs
the stack's tests and finishes, and a reviewer that approves: `scripted_build` runs it.
`branch_is_built` checks the result, and runs the branch's own suite once more.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from karma.config import KarmaConfig
from karma.sandbox import spec_from_config
from karma.sandbox.docker import DockerBackend
from karma.testing.repos import git


def _reply(text: str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {"text": text, "tool_calls": [{"name": name, "arguments": arguments}]}


def conversation(task: str, files: dict[str, str], command: str) -> dict[str, Any]:
    """Task `task`'s: write `files` (path → content), run `command`, finish."""
    writes = [
        {"name": "write_file", "arguments": {"path": path, "content": content}}
        for path, content in files.items()
    ]
    return {
        "name": task,
        "match": {"user": [f"Task {task}:"]},
        "replies": [
            {"text": "Writing it.", "tool_calls": writes},
            _reply("Testing.", "run", {"command": command}),
            _reply("Done.", "finish", {"summary": f"Added {task}."}),
        ],
    }


def first_attempt(task: str, files: dict[str, str], command: str) -> dict[str, Any]:
    """Attempt 1 of `task` alone (a broken one, placed before the task's own)."""
    broken = conversation(task, files, command)
    broken["name"] = f"{task}-broken"
    broken["match"] = {"user": [f"Task {task}:", "Attempt 1\n"]}
    return broken


def feature_script(tasks: list[dict[str, Any]], *conversations: dict[str, Any]) -> dict[str, Any]:
    """The planner submitting `tasks`, the `conversations`, and an approving reviewer."""
    review = {"verdict": "approve", "summary": "Small and tested.", "findings": []}
    return {
        "conversations": [
            {
                "name": "planner",
                "match": {"tool": "submit_plan"},
                "replies": [_reply("Two tasks.", "submit_plan", {"tasks": tasks})],
            },
            *conversations,
            {
                "name": "reviewer",
                "match": {"tool": "submit_review"},
                "replies": [_reply("Reviewed.", "submit_review", review)],
            },
        ]
    }


@dataclass(frozen=True)
class Built:
    """What a stack's two-task build must have left on its branch."""

    stack: str
    tasks: Collection[str]
    summary: str
    """How the tests gate's summary starts."""
    quoted: str
    """What the summary says of the command that ran (`go test -json ./...`)."""
    files: Collection[str]
    generated: tuple[str, ...]
    """Prefixes of what the stack's tools leave behind, never committed."""
    suite: str
    """The branch's own suite, run again by itself in the stack image."""
    timeout_s: float = 300


def branch_is_built(repo: Path, result: dict[str, Any], built: Built) -> str:
    """Every task succeeded in `built.stack`'s image, the tests gate passed, the branch
    holds the files and none of the tools' output; the output of the branch's own suite,
    which must pass, run in a fresh sandbox of the same image."""
    assert result["status"] == "succeeded", result
    tasks = {t["id"]: t for t in result["tasks"]}
    assert set(tasks) == set(built.tasks)
    assert all(t["status"] == "succeeded" for t in tasks.values()), tasks
    assert all(t.get("stack") == built.stack for t in tasks.values()), tasks
    gates = {g["name"]: g for g in result["gates"]}
    assert gates["tests"]["status"] == "passed", gates["tests"]
    summary = gates["tests"]["summary"]
    assert summary.startswith(built.summary) and built.quoted in summary, summary
    files = git(repo, "ls-tree", "-r", "--name-only", result["branch"]).split()
    assert set(built.files) <= set(files), files
    assert not any(f.startswith(built.generated) for f in files), files
    tree = repo.parent / "branch"
    git(repo, "worktree", "add", "-q", str(tree), result["branch"])
    image = result["tasks"][0]["sandbox"]["image"]
    assert image.startswith(f"karma/stack-{built.stack}:"), image
    config = KarmaConfig(sandbox={"base_image": os.environ["KARMA_BASE_IMAGE"]})
    spec = spec_from_config(config, image=image, workspace=tree, run_id="e2e", task_id="b")
    box = DockerBackend().start(spec)
    try:
        run = box.exec(built.suite, timeout_s=built.timeout_s)
    finally:
        box.close()
    assert run.ok, run.output
    return run.output
