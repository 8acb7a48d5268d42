"""The model script of a two-task feature on a stack's example project (Go, Rust).

A planner that submits the plan, one conversation per task that writes its files, runs
the stack's tests and finishes, and a reviewer that approves: `scripted_build` runs it.
"""

from __future__ import annotations

from typing import Any


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
