"""The coding agent's tools, and the confinement of every path the model names.

Tool names and inputs are a public contract: `read_file {path}`, `list_files {path}`,
`search_code {pattern, path?}`, `write_file {path, content}`, `edit_file {path, old,
new}`, `run {command}`, `finish {summary}`. Model output is untrusted input: each path
is resolved inside the worktree (no absolute paths, no `..`, nothing under `.git`, no
symlink that leads out) or refused with an error the model sees; nothing is written
then. Output returned to the model is bounded and marked as data.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from karma.failpoints import failpoint
from karma.models.interface import ToolSpec
from karma.sandbox.interface import ExecResult

MAX_READ_CHARS = 60_000
MAX_WRITE_BYTES = 1_000_000
MAX_LIST = 500
MAX_MATCHES = 100


def _spec(name: str, description: str, **props: str) -> ToolSpec:
    required = [key.rstrip("_") for key in props if not key.endswith("_")]
    properties = {
        key.rstrip("_"): {"type": "string", "description": text} for key, text in props.items()
    }
    return ToolSpec(
        name,
        description,
        {
            "type": "object",
            "properties": properties,
            "required": required,
            "additionalProperties": False,
        },
    )


TOOLS: tuple[ToolSpec, ...] = (
    _spec("read_file", "Read a text file of the repository.", path="Repository-relative path."),
    _spec(
        "list_files",
        "List files under a directory of the repository (recursive).",
        path="Repository-relative directory; '.' for the root.",
    ),
    _spec(
        "search_code",
        "Search file contents with a regular expression.",
        pattern="Python regular expression.",
        path_="Directory or file to search (default '.').",
    ),
    _spec(
        "write_file",
        "Create or overwrite a file with the given content.",
        path="Repository-relative path.",
        content="The whole new content.",
    ),
    _spec(
        "edit_file",
        "Replace one exact occurrence of `old` with `new` in a file.",
        path="Repository-relative path.",
        old="Exact text that occurs exactly once.",
        new="Replacement text.",
    ),
    _spec(
        "run",
        "Run a shell command in the task's sandbox (no network) at the repository root.",
        command="The command line.",
    ),
    _spec(
        "finish",
        "Say the task is done; KARMA then runs the checks.",
        summary="What was changed and why, in a few sentences.",
    ),
)


class ToolRefused(Exception):
    """A tool call the model must correct; the message goes back to it."""


@dataclass(frozen=True)
class ToolOutput:
    content: str
    is_error: bool = False
    finished: str | None = None
    """The summary, when this was `finish`."""


class Toolbox:
    """The tools bound to one worktree and one sandbox command runner."""

    def __init__(self, root: Path, run: Callable[[str], ExecResult], output_chars: int) -> None:
        self.root = root.resolve()
        self._run = run
        self._budget = output_chars
        self.written: set[str] = set()

    # -- confinement ------------------------------------------------------------------

    def resolve(self, raw: object, *, must_exist: bool = False) -> Path:
        if not isinstance(raw, str) or not raw.strip():
            raise ToolRefused("path must be a non-empty string")
        posix = PurePosixPath(raw.replace("\\", "/"))
        if posix.is_absolute() or raw.startswith("~"):
            raise ToolRefused(f"{raw}: absolute paths are not allowed; use a repository path")
        if ".." in posix.parts:
            raise ToolRefused(f"{raw}: '..' is not allowed")
        if ".git" in posix.parts:
            raise ToolRefused(f"{raw}: the .git directory is off limits")
        target = self.root.joinpath(*posix.parts) if posix.parts != (".",) else self.root
        probe = target
        while not probe.exists() and not probe.is_symlink() and probe != self.root:
            probe = probe.parent
        real = probe.resolve()
        if real != self.root and self.root not in real.parents:
            raise ToolRefused(f"{raw}: leads outside the repository")
        if must_exist and not target.exists():
            raise ToolRefused(f"{raw}: no such file")
        return target

    def _relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    # -- dispatch -------------------------------------------------------------------------

    def call(self, name: str, args: Mapping[str, Any]) -> ToolOutput:
        handler = getattr(self, f"_tool_{name}", None)
        if handler is None or name not in {tool.name for tool in TOOLS}:
            return ToolOutput(f"unknown tool {name!r}", is_error=True)
        try:
            result: ToolOutput = handler(**args)
        except TypeError as exc:
            return ToolOutput(f"bad arguments for {name}: {exc}", is_error=True)
        except ToolRefused as exc:
            return ToolOutput(str(exc), is_error=True)
        except (OSError, UnicodeDecodeError, re.error) as exc:
            return ToolOutput(f"{name} failed: {exc}", is_error=True)
        return result

    def _tool_read_file(self, path: str) -> ToolOutput:
        target = self.resolve(path, must_exist=True)
        if not target.is_file():
            raise ToolRefused(f"{path}: not a file")
        data = target.read_bytes()
        if b"\0" in data[:8000]:
            raise ToolRefused(f"{path}: binary file")
        text = data.decode("utf-8", errors="replace")
        if len(text) > MAX_READ_CHARS:
            text = text[:MAX_READ_CHARS] + f"\n[... truncated: file is {len(text)} characters]"
        return ToolOutput(text)

    def _walk(self, base: Path) -> list[Path]:
        found: list[Path] = []
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = sorted(d for d in dirnames if d not in {".git", "__pycache__"})
            found.extend(Path(dirpath) / f for f in sorted(filenames) if f != ".git")
            if len(found) > MAX_LIST:
                break
        return found

    def _tool_list_files(self, path: str = ".") -> ToolOutput:
        base = self.resolve(path, must_exist=True)
        files = [self._relative(p) for p in self._walk(base)]
        note = (
            f"\n[... more than {MAX_LIST} files; list a subdirectory]"
            if len(files) > MAX_LIST
            else ""
        )
        return ToolOutput("\n".join(files[:MAX_LIST]) + note)

    def _tool_search_code(self, pattern: str, path: str = ".") -> ToolOutput:
        regex = re.compile(pattern)
        base = self.resolve(path, must_exist=True)
        hits: list[str] = []
        for file in [base] if base.is_file() else self._walk(base):
            if file.stat().st_size > 2_000_000:
                continue
            text = file.read_bytes().decode("utf-8", errors="replace")
            for number, line in enumerate(text.splitlines(), start=1):
                if regex.search(line):
                    hits.append(f"{self._relative(file)}:{number}: {line[:300]}")
                    if len(hits) >= MAX_MATCHES:
                        return ToolOutput("\n".join(hits) + "\n[... more matches]")
        return ToolOutput("\n".join(hits) or "no matches")

    def _write(self, target: Path, content: str) -> None:
        data = content.encode("utf-8")
        if len(data) > MAX_WRITE_BYTES:
            raise ToolRefused(f"content is {len(data)} bytes; the limit is {MAX_WRITE_BYTES}")
        target.parent.mkdir(parents=True, exist_ok=True)
        self.resolve(self._relative(target))  # re-check: no symlink appeared on the way
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        owner = self.root.stat()
        if os.geteuid() == 0 and owner.st_uid != 0:  # keep files editable by the sandbox user
            os.chown(target, owner.st_uid, owner.st_gid)
        self.written.add(self._relative(target))
        failpoint("after_file_write")

    def _tool_write_file(self, path: str, content: str) -> ToolOutput:
        target = self.resolve(path)
        if target.is_dir():
            raise ToolRefused(f"{path}: is a directory")
        self._write(target, content)
        return ToolOutput(f"wrote {path} ({len(content)} characters)")

    def _tool_edit_file(self, path: str, old: str, new: str) -> ToolOutput:
        target = self.resolve(path, must_exist=True)
        text = target.read_text(encoding="utf-8")
        count = text.count(old) if old else 0
        if count != 1:
            where = "does not occur" if count == 0 else f"occurs {count} times"
            raise ToolRefused(
                f"{path}: `old` {where}; it must match exactly once. Nothing written."
            )
        self._write(target, text.replace(old, new, 1))
        return ToolOutput(f"edited {path}")

    def _tool_run(self, command: str) -> ToolOutput:
        if not isinstance(command, str) or not command.strip():
            raise ToolRefused("command must be a non-empty string")
        result = self._run(command)
        output = result.output
        notes = []
        if result.limit:
            notes.append(f"[stopped by the sandbox's {result.limit} limit]")
        if result.truncated or len(output) > self._budget:
            output = output[-self._budget :]
            notes.append(f"[output truncated: only the last {self._budget} characters are shown]")
        body = "\n".join([f"exit code {result.exit_code}", *notes, output])
        return ToolOutput(body, is_error=not result.ok)

    def _tool_finish(self, summary: str) -> ToolOutput:
        return ToolOutput("finished", finished=str(summary))
