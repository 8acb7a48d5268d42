"""Generated model replies that break the rules, for the fuzz test and its benchmark.

`conversation(rng, n)` gives `n` script replies (`karma.models.script` form, played by
the loopback server through the real SDKs) drawn from the kinds real models produce:
several tool calls, text with calls, arguments cut off mid-JSON, encoded twice, of the
wrong type or missing, unknown or unspeakable tool names, empty replies, `max_tokens`
in the middle of a call, refusals, `pause_turn`, thinking blocks, very long text, paths
that try to leave the worktree, and `finish` anywhere (or never). Seeded: the same seed
gives the same replies. This is test data KARMA's tests make; the replies it describes
are the untrusted side, which is the point.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

ABSOLUTE = "/tmp/karma-fuzz-pwned"  # noqa: S108 (a path no tool may reach: the test checks)
ESCAPES = (
    "../outside/pwned.txt", ABSOLUTE, ".git/config", ".git/hooks/pre-commit",
    "a/../../outside/x", "link/escape.txt", "\x00nul", "", ".", "con/../../../etc/passwd",
)  # fmt: skip
"""Paths a model may name to leave the worktree (the `outside` sibling is watched)."""
PATHS = ("README.md", "app/api.py", "app/__init__.py", "notes.txt", "link", *ESCAPES)
COMMANDS = (
    "ls -la", "cat README.md", "python3 -c 'print(42)'", "echo hi > ../outside/pwned.txt",
    "ln -sfn /etc link", "ln -sfn .. link", "printf 'x%.0s' $(seq 1 3000)", "exit 3",
    "mkdir -p app && echo 'X = 1' > app/api.py", "git status --short",
)  # fmt: skip
TOOLS = ("read_file", "list_files", "search_code", "write_file", "edit_file", "run", "finish")


def _arguments(rng: random.Random, tool: str) -> dict[str, Any]:
    path = rng.choice(PATHS)
    return {
        "read_file": {"path": path},
        "list_files": {"path": rng.choice((".", "app", *ESCAPES))},
        "search_code": {"pattern": rng.choice(("X", "(", "def .*", "[")), "path": "."},
        "write_file": {"path": path, "content": rng.choice(("X = 1\n", "é\r\n", "x" * 5000))},
        "edit_file": {"path": path, "old": rng.choice(("X", "# sample", "")), "new": "Y"},
        "run": {"command": rng.choice(COMMANDS)},
        "finish": {"summary": rng.choice(("done", "", "x" * 3000))},
    }.get(tool, {"anything": 1})


def _call(rng: random.Random) -> dict[str, Any]:
    tool = rng.choice(TOOLS)
    return {"name": tool, "arguments": _arguments(rng, tool)}


def _garbled(rng: random.Random) -> dict[str, Any]:
    """One call whose arguments a model wrote badly."""
    tool = rng.choice(TOOLS)
    good = json.dumps(_arguments(rng, tool))
    kind = rng.randrange(6)
    if kind == 0:
        return {"name": tool, "raw_arguments": good[: rng.randrange(len(good))]}  # cut off
    if kind == 1:
        return {"name": tool, "raw_arguments": json.dumps(good)}  # encoded twice
    if kind == 2:
        return {"name": tool, "raw_arguments": rng.choice(('["ls"]', "42", "null", "'x'", "{"))}
    if kind == 3:
        wrong = {key: rng.choice((3, None, ["x"], {"a": 1}, True)) for key in json.loads(good)}
        return {"name": tool, "arguments": wrong}
    if kind == 4:
        return {"name": tool, "arguments": {}}  # missing arguments
    name = rng.choice(("delete_repo", "read file", "", "x" * 100, "finish\n", "run;rm -rf /"))
    return {"name": name, "arguments": {"path": "x"}}


def _reply(rng: random.Random) -> dict[str, Any]:
    kinds: list[Callable[[], dict[str, Any]]] = [
        lambda: {"tool_calls": [_call(rng)]},
        lambda: {"tool_calls": [_call(rng) for _ in range(rng.randrange(2, 6))]},
        lambda: {"text": "First this, then that.", "tool_calls": [_call(rng), _call(rng)]},
        lambda: {"tool_calls": [_garbled(rng)]},
        lambda: {"tool_calls": [_call(rng), _garbled(rng), _call(rng)]},
        lambda: {"text": ""},
        lambda: {"text": rng.choice(("I will now", "Done, I think.", "x" * 60_000))},
        lambda: {"stop_reason": "max_tokens", "tool_calls": [_call(rng), _garbled(rng)]},
        lambda: {"stop_reason": "max_tokens", "text": "Let me expl"},
        lambda: {"stop_reason": "refusal", "refusal": "I can't help with that.", "text": ""},
        lambda: {"stop_reason": "refusal", "tool_calls": [_call(rng)]},
        lambda: {"stop_reason": "pause_turn", "text": "Searching"},
        lambda: {
            "thinking": [{"text": "hmm"}, {"text": "opaque", "redacted": True}],
            "tool_calls": [_call(rng)],
        },
        lambda: {
            "tool_calls": [
                _call(rng),
                {"name": "finish", "arguments": {"summary": "ok"}},
                _call(rng),
            ]
        },
    ]
    return rng.choice(kinds)()


def conversation(rng: random.Random, n: int) -> list[dict[str, Any]]:
    """`n` replies; the last is a `finish` half of the time (else the model never calls it)."""
    replies = [_reply(rng) for _ in range(n)]
    if rng.random() < 0.5:
        replies[-1] = {"tool_calls": [{"name": "finish", "arguments": {"summary": "done"}}]}
    return replies
