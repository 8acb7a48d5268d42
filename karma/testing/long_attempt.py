"""A long, realistic agent attempt for tests and benchmarks: file reads and failing test runs.

The worktree holds real source files: those of the installed `httpx` package (public,
https://github.com/encode/httpx), copied in. `run` answers with real CI logs of failing
tests from the public failure corpus (`tests/golden/failures/public`, each row naming
its source). The script plays the model: read a file, run the tests, write a note, over
and over, then `finish`. Everything here is test data written by KARMA's own tests.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from karma.models.script import Script, parse_script
from karma.sandbox.interface import ExecResult

SOURCE_FILES = (
    "_urls.py", "_urlparse.py", "_main.py", "_decoders.py", "_auth.py",
    "_api.py", "_multipart.py", "_config.py", "_exceptions.py", "_utils.py",
)  # fmt: skip
"""Files of the `httpx` package, 8-22 KB each."""
TASK_LINE = "Task api:"


def prepare_worktree(root: Path) -> list[str]:
    """Copy the source files into `root/src`; their repository-relative paths."""
    import httpx

    package = Path(httpx.__file__).parent
    (root / "src").mkdir(parents=True, exist_ok=True)
    for name in SOURCE_FILES:
        shutil.copyfile(package / name, root / "src" / name)
    return [f"src/{name}" for name in SOURCE_FILES]


def corpus_logs(corpus: Path, label: str = "test_failure", count: int = 12) -> list[str]:
    """The first `count` logs of `label` in a public-corpus JSONL file."""
    logs = []
    with corpus.open(encoding="utf-8") as rows:
        for line in rows:
            row = json.loads(line)
            if row["label"] == label:
                logs.append(str(row["log"]))
                if len(logs) == count:
                    break
    return logs


class LogRunner:
    """A sandbox whose test runs fail with the corpus logs, in turn."""

    def __init__(self, logs: list[str]) -> None:
        self.logs = logs
        self.commands: list[str] = []

    def __call__(self, command: str, time_left: float = 0.0) -> ExecResult:
        self.commands.append(command)
        return ExecResult(command, 1, self.logs[(len(self.commands) - 1) % len(self.logs)], 1.0)


def long_replies(paths: list[str], steps: int = 30) -> list[dict[str, Any]]:
    """`steps` replies: read, run, write, ..., and `finish` last."""
    replies: list[dict[str, Any]] = []
    for step in range(steps - 1):
        kind = step % 3
        if kind == 0:
            call = {"name": "read_file", "arguments": {"path": paths[step // 3 % len(paths)]}}
        elif kind == 1:
            call = {"name": "run", "arguments": {"command": f"python -m pytest -q  # {step}"}}
        else:
            content = f"step {step}: the failure is still there\n"
            call = {
                "name": "write_file",
                "arguments": {"path": f"notes/{step}.md", "content": content},
            }
        replies.append({"text": f"Step {step}.", "tool_calls": [call]})
    replies.append({"tool_calls": [{"name": "finish", "arguments": {"summary": "done"}}]})
    return replies


def long_script(paths: list[str], steps: int = 30) -> Script:
    conversation = {"match": {"user": [TASK_LINE]}, "replies": long_replies(paths, steps)}
    return parse_script({"conversations": [conversation]})


def run_long_attempt(
    root: Path,
    server: Any,
    corpus: Path,
    *,
    elide_at: float,
    window: int,
    model: str = "anthropic:claude-sonnet-4-5",
    steps: int = 30,
) -> tuple[Any, list[dict[str, Any]]]:
    """The attempt through the real SDK of `model` and the loopback `server` (a started
    `ModelServer`): (the `AgentResult`, the `model_calls` rows it recorded)."""
    import threading

    from karma.agent import run_agent
    from karma.config import AgentConfig, KarmaConfig
    from karma.conversation import Brief
    from karma.models import get_model
    from karma.models.recorded import CallRecorder
    from karma.tools import Toolbox

    paths = prepare_worktree(root)
    server.set_script(long_script(paths, steps))
    urls = {"anthropic": server.anthropic_base_url, "openai": server.openai_base_url}
    config = KarmaConfig.model_validate(
        {"providers": {p: {"base_url": url} for p, url in urls.items()}}
    )
    keys = {"ANTHROPIC_API_KEY": "k", "OPENAI_API_KEY": "k"}
    client = get_model(model, config, environ=keys)
    calls: list[dict[str, Any]] = []
    recorder = CallRecorder(client, lambda **row: calls.append(row), ("run", "api", 1))
    box = Toolbox(root, LogRunner(corpus_logs(corpus)), output_chars=8000)
    limits = AgentConfig(context_elide_at=elide_at, max_tokens=50_000_000, max_steps=steps + 5)
    brief = Brief("api", "Make the client tests pass", "Fix src/.", "Fix the failing tests", 1)
    result = run_agent(brief, recorder, box, limits, stop=threading.Event(), context_window=window)
    return result, calls
