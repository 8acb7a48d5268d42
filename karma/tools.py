"""The coding agent's tools, and the confinement of every path the model names.

Tool names and inputs are a public contract: `read_file {path}`, `list_files {path}`,
`search_code {pattern, path?}`, `write_file {path, content}`, `edit_file {path, old,
new}`, `run {command}`, `finish {summary}`. Model output is untrusted input, and so is
the worktree: a process that `run` left behind may change it while a tool works. Every
path is opened beneath the worktree by `karma.confine` (no absolute paths, no `..`,
nothing under `.git`, no symlink at any component, ever: a race can make a call fail,
never lead out) or refused with an error the model sees; nothing is written then. Walks
never follow symlinks. Reads are bounded before they start (size checked first), output
returned to the model is bounded and marked as data, edits keep a file's encoding, line
endings and final newline, and the worktree may grow only so much (`Footprint`).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from karma import confine
from karma.failpoints import failpoint
from karma.footprint import Footprint
from karma.models.interface import ToolSpec
from karma.sandbox.interface import ExecResult
from karma.text import style as textstyle

MAX_READ_CHARS = 60_000
MAX_READ_BYTES = 4 * MAX_READ_CHARS
"""Bytes read for `read_file`: enough for MAX_READ_CHARS of UTF-8, whatever the file's size."""
MAX_WRITE_BYTES = 1_000_000
MAX_LIST = 500
MAX_MATCHES = 100
MAX_SEARCH_FILE = 2_000_000
"""Bigger files are skipped by `search_code` (their size is checked before any read)."""
MAX_SEARCH_BYTES = 32_000_000
"""Bytes one `search_code` call reads in all, then it stops and says so."""
WALK_SKIP = frozenset({".git", "__pycache__"})
RunCommand = Callable[[str, float], ExecResult]
"""Runs a command in the sandbox with at most that many seconds (the time the attempt has left)."""


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


def argument_problem(spec: ToolSpec, args: Mapping[str, Any]) -> str | None:
    """What is wrong with a call's arguments (model output, untrusted), or None.

    Every input of every tool is a string; a model (and OpenAI's string-encoded
    arguments) may send a number, a list, null or nothing at all."""
    properties = spec.input_schema["properties"]
    unknown = sorted(set(args) - set(properties))
    if unknown:
        return f"unknown {', '.join(str(key)[:40] for key in unknown)}"
    missing = [key for key in spec.input_schema["required"] if key not in args]
    if missing:
        return f"missing {', '.join(missing)}"
    wrong = [key for key, value in args.items() if not isinstance(value, str)]
    if wrong:
        return ", ".join(f"{key} must be a string, not {_json_type(args[key])}" for key in wrong)
    return None


def _json_type(value: object) -> str:
    names = {bool: "a boolean", int: "a number", float: "a number", list: "an array",
             dict: "an object", type(None): "null"}  # fmt: skip
    return names.get(type(value), type(value).__name__)


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

    def __init__(
        self,
        root: Path,
        run: RunCommand,
        output_chars: int,
        *,
        footprint: Footprint | None = None,
    ) -> None:
        self.root = root.resolve()
        self._run = run
        self._budget = output_chars
        self._footprint = footprint
        self.written: set[str] = set()
        self.excess: str | None = None
        """Set when the worktree grew past its limit: the attempt fails with this reason."""

    # -- confinement ------------------------------------------------------------------

    def _parts(self, raw: object) -> tuple[str, ...]:
        try:
            return confine.relative_parts(raw)
        except confine.PathRefused as exc:
            raise ToolRefused(str(exc)) from None

    def _owner(self) -> confine.Owner:
        """The worktree's owner, for what the tools create, when the host runs as root:
        files stay editable by the sandbox user."""
        if os.geteuid() != 0:
            return None
        owner = self.root.stat()
        return None if owner.st_uid == 0 else (owner.st_uid, owner.st_gid)

    # -- dispatch -------------------------------------------------------------------------

    def call(
        self, name: str, args: Mapping[str, Any], *, time_left: float = math.inf
    ) -> ToolOutput:
        """One tool call; `time_left`: seconds the attempt has left, the most a `run` gets."""
        spec = next((tool for tool in TOOLS if tool.name == name), None)
        handler = getattr(self, f"_tool_{name}", None)
        if spec is None or handler is None:
            known = ", ".join(tool.name for tool in TOOLS)
            return ToolOutput(f"unknown tool {name[:80]!r}; the tools are: {known}", True)
        problem = argument_problem(spec, args)
        if problem is not None:
            return ToolOutput(f"bad arguments for {name}: {problem}", is_error=True)
        try:
            result: ToolOutput = (
                self._tool_run(**args, time_left=time_left) if name == "run" else handler(**args)
            )
        except TypeError as exc:
            return ToolOutput(f"bad arguments for {name}: {exc}", is_error=True)
        except ToolRefused as exc:
            return ToolOutput(str(exc), is_error=True)
        except (confine.PathRefused, FileNotFoundError) as exc:
            return ToolOutput(str(exc.args[-1] if exc.args else exc), is_error=True)
        except (OSError, UnicodeError, re.error) as exc:
            return ToolOutput(f"{name} failed: {exc}", is_error=True)
        return result

    def _tool_read_file(self, path: str) -> ToolOutput:
        parts = self._parts(path)
        with confine.opened(self.root) as root:
            found = confine.read_bytes(root, parts, MAX_READ_BYTES)
        text = textstyle.read_text(found.data)
        if text is None:
            raise ToolRefused(f"{path}: binary file")
        if len(text) > MAX_READ_CHARS or found.size > len(found.data):
            text = text[:MAX_READ_CHARS] + f"\n[... truncated: file is {found.size} bytes]"
        return ToolOutput(text)

    def _entries(self, path: str) -> Iterator[confine.Entry]:
        """What is below `path` (or `path` itself, when it is a file), never through a symlink."""
        parts = self._parts(path)
        prefix = "/".join(parts)
        with confine.opened(self.root) as root:
            kind = confine.kind_at(root, parts)
            if kind is None:
                raise ToolRefused(f"{path}: no such file or directory")
            if kind == "symlink":
                raise ToolRefused(f"{path}: is a symlink (symlinks are never followed)")
            if kind != "dir":
                parent = confine.open_dir(root, parts[:-1])
                try:
                    with os.scandir(parent) as scan:
                        for item in scan:
                            if item.name == parts[-1]:
                                yield confine.Entry(prefix, kind, parent, item)
                finally:
                    os.close(parent)
                return
            base = confine.open_dir(root, parts)
        try:
            yield from confine.walk(base, skip=WALK_SKIP, prefix=f"{prefix}/" if prefix else "")
        finally:
            os.close(base)

    def _tool_list_files(self, path: str = ".") -> ToolOutput:
        shown: list[str] = []
        for entry in self._entries(path):
            if entry.kind == "symlink":
                shown.append(f"{entry.path} [symlink: not followed]")
            elif entry.kind == "file":
                shown.append(entry.path)
            if len(shown) > MAX_LIST:
                break
        note = (
            f"\n[... more than {MAX_LIST} files; list a subdirectory]"
            if len(shown) > MAX_LIST
            else ""
        )
        return ToolOutput("\n".join(shown[:MAX_LIST]) + note)

    def _tool_search_code(self, pattern: str, path: str = ".") -> ToolOutput:
        regex = re.compile(pattern)
        hits: list[str] = []
        budget = MAX_SEARCH_BYTES
        for entry in self._entries(path):
            if entry.kind != "file":
                continue  # a symlink's target is never read
            try:
                fd = confine.open_file_at(entry.dir_fd, entry.entry.name, entry.path)
            except (OSError, confine.PathRefused):
                continue  # swapped or removed since it was listed
            try:
                found = confine.read_fd(fd, entry.path, min(MAX_SEARCH_FILE, budget) + 1)
            except confine.PathRefused:
                continue
            finally:
                os.close(fd)
            if found.size > MAX_SEARCH_FILE:
                continue
            if found.size > budget:
                hits.append(f"[... search stopped after {MAX_SEARCH_BYTES} bytes; "
                            "search a subdirectory]")  # fmt: skip
                break
            budget -= len(found.data)
            text = found.data.decode("utf-8", errors="replace")
            for number, line in enumerate(text.splitlines(), start=1):
                if regex.search(line):
                    hits.append(f"{entry.path}:{number}: {line[:300]}")
                    if len(hits) >= MAX_MATCHES:
                        return ToolOutput("\n".join(hits) + "\n[... more matches]")
        return ToolOutput("\n".join(hits) or "no matches")

    def _existing(self, root: int, parts: tuple[str, ...], limit: int) -> confine.Contents | None:
        try:
            return confine.read_bytes(root, parts, limit)
        except FileNotFoundError:
            return None

    def _write(self, root: int, parts: tuple[str, ...], data: bytes) -> None:
        if len(data) > MAX_WRITE_BYTES:
            raise ToolRefused(f"content is {len(data)} bytes; the limit is {MAX_WRITE_BYTES}")
        confine.write_bytes(root, parts, data, owner=self._owner())
        self.written.add("/".join(parts))
        failpoint("after_file_write")
        self._measure()

    def _measure(self) -> None:
        """Check the worktree's growth (after `run` and writes; next to free, see
        `Footprint.quick_excess`); past its limit, the attempt fails with `excess`."""
        if self._footprint is not None and self.excess is None:
            self.excess = self._footprint.quick_excess()

    def _tool_write_file(self, path: str, content: str) -> ToolOutput:
        parts = self._parts(path)
        if not parts:
            raise ToolRefused(f"{path}: is a directory")
        with confine.opened(self.root) as root:
            before = self._existing(root, parts, 64 * 1024)
            style = textstyle.style_of(before.data) if before is not None else None
            self._write(root, parts, textstyle.written(content, style))
        return self._reply(f"wrote {path} ({len(content)} characters)")

    def _tool_edit_file(self, path: str, old: str, new: str) -> ToolOutput:
        parts = self._parts(path)
        with confine.opened(self.root) as root:
            found = self._existing(root, parts, MAX_WRITE_BYTES + 1)
            if found is None:
                raise ToolRefused(f"{path}: no such file")
            if found.size > MAX_WRITE_BYTES:
                raise ToolRefused(f"{path}: is {found.size} bytes; files over "
                                  f"{MAX_WRITE_BYTES} bytes are not edited")  # fmt: skip
            text, style = textstyle.decode(found.data)
            result, count = textstyle.edited(text, style, old, new)
            if count != 1:
                where = "does not occur" if count == 0 else f"occurs {count} times"
                note = " (the file is not UTF-8: it is matched as latin-1)" if style.latin1 else ""
                raise ToolRefused(
                    f"{path}: `old` {where}; it must match exactly once{note}. Nothing written."
                )
            try:
                data = textstyle.encode(result, style)
            except UnicodeEncodeError:
                raise ToolRefused(f"{path}: the file is not UTF-8 and `new` has characters "
                                  "it can not hold; nothing written") from None  # fmt: skip
            self._write(root, parts, data)
        return self._reply(f"edited {path}")

    def _reply(self, text: str) -> ToolOutput:
        if self.excess is None:
            return ToolOutput(text)
        return ToolOutput(f"{text}\n[this attempt fails: {self.excess}]", is_error=True)

    def _tool_run(self, command: str, *, time_left: float = math.inf) -> ToolOutput:
        if not isinstance(command, str) or not command.strip():
            raise ToolRefused("command must be a non-empty string")
        if time_left <= 0:
            raise ToolRefused("not run: the attempt's wall-time limit is reached")
        result = self._run(command, time_left)
        output = result.output
        notes = []
        if result.limit:
            notes.append(f"[stopped by the sandbox's {result.limit} limit]")
        if result.truncated or len(output) > self._budget:
            output = output[-self._budget :]
            notes.append(f"[output truncated: only the last {self._budget} characters are shown]")
        self._measure()
        if self.excess is not None:
            notes.append(f"[this attempt fails: {self.excess}]")
        body = "\n".join([f"exit code {result.exit_code}", *notes, output])
        return ToolOutput(body, is_error=not result.ok or self.excess is not None)

    def _tool_finish(self, summary: str) -> ToolOutput:
        return ToolOutput("finished", finished=str(summary))
