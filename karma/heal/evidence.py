"""Evidence of one failed attempt or check: what ran, how it ended, and the tail of its output.

The output is cleaned once, here (ANSI escapes and control bytes removed, undecodable
bytes replaced, bounded to a tail), so every later stage (signature, classification,
the record, the escalation report) sees the same bounded text, whatever the tool
printed: 50 MB, binary, or nothing.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any, Literal

from karma.sandbox.interface import ExecResult, Limit

Step = Literal["install", "build", "test", "lint", "typecheck", "agent"]
DEFAULT_TAIL = 32_000

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
# Control characters other than tab and newline; carriage returns become newlines
# below so progress bars collapse into lines rather than vanish.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffd]+")
# CI runners prefix each line: GitHub Actions with an ISO timestamp (`gh run view --log`
# also with the job and step names, tab-separated). Removed so line-anchored patterns hold.
_RUNNER_PREFIX = re.compile(
    r"^(?:[^\t\n]{0,200}\t[^\t\n]{0,200}\t)?"
    r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z ?(?:##\[error\])?",
    re.MULTILINE,
)


def clean_output(text: str | bytes, *, limit: int = DEFAULT_TAIL) -> str:
    """The tail of `text`, at most `limit` characters, ANSI and control bytes removed."""
    if isinstance(text, bytes):
        # Decode a little more than the tail so multi-byte characters at the cut survive.
        text = text[-(limit * 4) :].decode("utf-8", "replace")
    # Cut first: cleaning 50 MB to keep 32 KB would be wasted work.
    text = text[-(limit * 2) :]
    text = _ANSI.sub("", text).replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub("", text)
    text = _RUNNER_PREFIX.sub("", text)
    return text[-limit:]


@dataclass(frozen=True)
class Evidence:
    """How a failed command ended; what every failure is classified from."""

    step: Step
    command: str
    exit_code: int
    limit: Limit | None
    """The sandbox limit that stopped the command: 'timeout', 'memory', 'pids'."""
    duration_s: float
    output_tail: str
    """ANSI-stripped, bounded tail of stdout and stderr."""
    tool: str | None = None
    """The tool that ran (pytest, mypy, npm...), when the caller knows it."""

    @classmethod
    def from_exec(
        cls,
        result: ExecResult,
        *,
        step: Step,
        tool: str | None = None,
        tail_chars: int = DEFAULT_TAIL,
    ) -> Evidence:
        return cls(
            step=step,
            command=result.command,
            exit_code=result.exit_code,
            limit=result.limit,
            duration_s=result.duration_s,
            output_tail=clean_output(result.output, limit=tail_chars),
            tool=tool or guess_tool(result.command),
        )

    @classmethod
    def from_log(
        cls,
        text: str | bytes,
        *,
        step: Step = "build",
        command: str = "",
        exit_code: int = 1,
        limit: Limit | None = None,
        tool: str | None = None,
        tail_chars: int = DEFAULT_TAIL,
    ) -> Evidence:
        """Evidence from a log alone (`karma classify`, the golden corpus, imports)."""
        return cls(step, command, exit_code, limit, 0.0, clean_output(text, limit=tail_chars),
                   tool or guess_tool(command))  # fmt: skip

    @property
    def state(self) -> str:
        """The container's state in words: OOM-killed, timed out, killed, or exited N."""
        if self.limit == "memory":
            return "OOM-killed"
        if self.limit == "timeout":
            return "timed out"
        if self.limit == "pids":
            return "process limit reached"
        if self.exit_code == 137:
            return "killed (exit 137)"
        return f"exited {self.exit_code}"

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "state": self.state}


_TOOLS = (
    "pytest", "mypy", "pyright", "ruff", "flake8", "poetry", "uv", "pip", "tsc", "eslint",
    "jest", "npm", "npx", "yarn", "pnpm", "node", "gcc", "clang", "cargo", "rustc", "go",
    "make", "python",
)  # fmt: skip
_SPLIT = re.compile(r"[\s/;&|()=]+")


def guess_tool(command: str) -> str | None:
    """The first known tool named in a command (`python -m pytest` -> pytest)."""
    names = [name for name in _SPLIT.split(command) if name]
    for name in names:
        if name in _TOOLS and name != "python":
            return name
    return "python" if any(name.startswith("python") for name in names) else None
