"""The approval gate: a change to a critical path needs a human.

Critical paths are data (`[gates.approval]` of the trusted suite): globs (CI files,
migrations, auth modules, KARMA's own config and data, test-runner configuration, git's
attributes and submodules, lockfiles), tables of config files compared base against
head (`[tool.karma]`, `[tool.pytest.*]` of `pyproject.toml`), lines of ignore files
(`!/.karma/` in a `.gitignore`), and git modes (symlinks, gitlinks). A match does not
fail the gate: it is a `warning` whose findings say which file needs a human and why,
and the suite reports `needs_approval`, so a build is not marked succeeded. Such a change
never configures its own gates: those come from trusted places (karma/home.py,
karma/config/layers.py), whatever the change holds.
"""

from __future__ import annotations

import configparser
import fnmatch
import os
import re
import stat
import time
import tomllib
from collections.abc import Iterator, Mapping
from typing import Any

from karma.gates.change import all_changed_paths, git
from karma.gates.interface import Finding, GateContext, GateResult, GateSettings

_MISSING = object()


def matches(path: str, glob: str) -> bool:
    """fnmatch, where a leading `**/` also matches at the root (`**/migrations/**`)."""
    if fnmatch.fnmatch(path, glob):
        return True
    return glob.startswith("**/") and fnmatch.fnmatch(path, glob[3:])


def changed_modes(ctx: GateContext) -> dict[str, tuple[str, str]]:
    """Each changed path's (base mode, head mode), from `git diff --raw`; an untracked
    file of a working tree gets the mode of what is on disk (a symlink is `120000`)."""
    # The host's git ignores submodules (`diff.ignoreSubmodules=all`), which would hide a
    # new gitlink. Between two trees, and between a tree and the index, `none` reads only
    # objects; a submodule's own working tree is never looked into.
    args = ["diff", "--raw", "-z", "--no-renames", "--no-abbrev"]
    if ctx.head:
        listings = [[*args, "--ignore-submodules=none", ctx.base, ctx.head]]
    else:  # what is on disk first; the index adds the gitlinks
        listings = [[*args, ctx.base], [*args, "--ignore-submodules=none", "--cached", ctx.base]]
    modes: dict[str, tuple[str, str]] = {}
    for listing in listings:
        fields = git(ctx, *listing).split("\0")
        for meta, path in zip(fields[0::2], fields[1::2], strict=False):
            if meta.startswith(":"):
                old, new = meta[1:].split()[:2]
                modes.setdefault(path, (old, new))
    if not ctx.head:
        untracked = git(ctx, "ls-files", "--others", "--exclude-standard", "-z")
        for path in filter(None, untracked.split("\0")):
            try:
                st = os.lstat(ctx.repo / path)
            except OSError:
                continue
            modes[path] = ("000000", "120000" if stat.S_ISLNK(st.st_mode) else "100644")
    return modes


def _text_at(ctx: GateContext, path: str, rev: str | None) -> str | None:
    """`path` at `rev` (None: the working tree, never through a symlink); None if absent."""
    if rev is None:
        file = ctx.repo / path
        if file.is_symlink() or not file.is_file():
            return None
        try:
            return file.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None
    listed = git(ctx, "ls-tree", "--name-only", "-z", rev, "--", path)
    if not listed.strip("\0"):
        return None
    return git(ctx, "show", f"{rev}:{path}")


def _table(text: str | None, path: str, dotted: str) -> Any:
    """The table `dotted` of a TOML (or, for `.cfg`/`.ini`, the INI section `dotted`)."""
    if text is None:
        return _MISSING
    if path.endswith((".cfg", ".ini")):
        parser = configparser.ConfigParser(interpolation=None)
        parser.read_string(text)
        return dict(parser[dotted]) if parser.has_section(dotted) else _MISSING
    node: Any = tomllib.loads(text)
    for key in dotted.split("."):
        if not isinstance(node, dict) or key not in node:
            return _MISSING
        node = node[key]
    return node


def _table_changes(ctx: GateContext, path: str, tables: list[str]) -> Iterator[str]:
    before, after = _text_at(ctx, path, ctx.base), _text_at(ctx, path, ctx.head)
    for dotted in tables:
        try:
            changed = _table(before, path, dotted) != _table(after, path, dotted)
        except (tomllib.TOMLDecodeError, configparser.Error, UnicodeDecodeError):
            yield f"it cannot be parsed, so its [{dotted}] may have changed"
            continue
        if changed:
            yield f"its [{dotted}] configuration changed"


def _line_changes(ctx: GateContext, path: str, patterns: list[str]) -> Iterator[str]:
    before = (_text_at(ctx, path, ctx.base) or "").splitlines()
    after = (_text_at(ctx, path, ctx.head) or "").splitlines()
    for line in sorted(set(before) ^ set(after)):
        if any(re.search(p, line) for p in patterns):
            yield line


class ApprovalGate:
    name = "approval"

    def run(self, ctx: GateContext, settings: GateSettings) -> GateResult:
        started = time.monotonic()
        globs = [*settings.get("paths", ()), *settings.get("extra_paths", ())]
        tables: Mapping[str, list[str]] = settings.get("config_tables", {})
        lines: Mapping[str, list[str]] = settings.get("config_lines", {})
        critical_modes = set(settings.get("modes", ()))
        findings: list[Finding] = []

        def need(rule: str, path: str, why: str) -> None:
            message = f"{path} is a critical path ({why}): a human must approve this change"
            findings.append(Finding(f"approval.{rule}", "warning", path, 0, message))

        modes = changed_modes(ctx) if critical_modes else {}
        for path in sorted(set(all_changed_paths(ctx)) | set(modes)):
            if hit := next((g for g in globs if matches(path, g)), None):
                need("critical-path", path, hit)
                continue
            old, new = modes.get(path, ("", ""))
            if kind := next((m for m in (new, old) if m in critical_modes), None):
                need("link", path, "a symlink" if kind == "120000" else f"git mode {kind}")
                continue
            for glob, names in tables.items():
                if matches(path, glob):
                    for why in _table_changes(ctx, path, list(names)):
                        need("config-table", path, why)
            for glob, patterns in lines.items():
                if matches(path, glob):
                    for line in _line_changes(ctx, path, list(patterns)):
                        need("config-line", path, f"the line {line.strip()!r}")
        summary = (
            f"{len(findings)} critical path(s) changed: needs approval"
            if findings
            else "no critical paths changed"
        )
        return GateResult(
            self.name,
            "warning" if findings else "passed",
            tuple(findings),
            time.monotonic() - started,
            summary,
            data={"needs_approval": bool(findings)},
        )
