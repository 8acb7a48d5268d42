"""The change under check, read from git: changed paths, the diff, base file contents.

Every gate that compares head with base asks this module, so "what changed" has one
meaning: the diff from the base commit to `head` (or, with no head, to the working tree
including untracked files). Nothing here writes to the repository. git runs through
`karma.hostgit` on the main repository's git directory (`GateContext.git_dir`), never
discovered from the tree under check, which a gate sandbox may have written; a base
checkout is an export of the base commit (no `.git`) in a temporary folder.
"""

from __future__ import annotations

import functools
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from karma.errors import WorkspaceError
from karma.gates.files import read_text_beneath
from karma.gates.interface import GateContext, GateUnavailable
from karma.hostgit import HostGit, discover


def host_git(where: GateContext | Path) -> HostGit:
    """git for a gate: the context's git directory, with the working tree only when the
    change is the working tree itself (no head: the user's own checkout, whose top level
    is looked up once). A bare `Path` is the user's own repository."""
    try:
        if isinstance(where, Path):
            git_dir, top = _discovered(where)
            return HostGit(git_dir, top or where)
        if where.head:  # an export a gate sandbox may have written: never discovered
            return HostGit(where.git_dir or _discovered(where.repo)[0])
        git_dir, top = _discovered(where.repo)
    except WorkspaceError as exc:
        raise GateUnavailable(str(exc)) from None
    return HostGit(where.git_dir or git_dir, top or where.repo)


@functools.lru_cache(maxsize=32)
def _discovered(repo: Path) -> tuple[Path, Path | None]:
    return discover(repo)


def git(where: GateContext | Path, *args: str, timeout: float = 60.0, check: bool = True) -> str:
    gitter = host_git(where)
    if not check:
        done = gitter.completed(*args, timeout=timeout)
        return done.stdout.decode("utf-8", "replace") if done.returncode == 0 else ""
    try:
        return gitter.run(*args, timeout=timeout, strip=False)
    except WorkspaceError as exc:
        raise GateUnavailable(str(exc)[:300]) from None


def resolve(repo: Path, ref: str) -> str:
    """The commit sha of `ref`; a `GateUnavailable` naming the ref when there is none."""
    out = git(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False).strip()
    if not out:
        raise GateUnavailable(f"{ref!r} is not a commit in {repo}")
    return out


def changed_paths(ctx: GateContext) -> list[str]:
    """Repository-relative paths the change adds or modifies (deleted ones left out)."""
    args = ["diff", "--name-only", "--no-renames", "--diff-filter=ACMRT", "-z", ctx.base]
    if ctx.head:
        args.append(ctx.head)
    paths = set(filter(None, git(ctx, *args).split("\0")))
    if not ctx.head:
        untracked = git(ctx, "ls-files", "--others", "--exclude-standard", "-z")
        paths.update(filter(None, untracked.split("\0")))
    return sorted(paths)


def all_changed_paths(ctx: GateContext) -> list[str]:
    """Like `changed_paths`, deleted paths included (for the approval gate)."""
    args = ["diff", "--name-only", "-z", ctx.base]
    if ctx.head:
        args.append(ctx.head)
    paths = set(filter(None, git(ctx, *args).split("\0")))
    if not ctx.head:
        untracked = git(ctx, "ls-files", "--others", "--exclude-standard", "-z")
        paths.update(filter(None, untracked.split("\0")))
    return sorted(paths)


def diff_text(ctx: GateContext, *, context_lines: int = 3) -> str:
    args = ["diff", "--no-color", f"-U{context_lines}", ctx.base]
    if ctx.head:
        args.append(ctx.head)
    text = git(ctx, *args)
    if not ctx.head:
        for rel in filter(
            None, git(ctx, "ls-files", "--others", "--exclude-standard", "-z").split("\0")
        ):
            # Never through a symlink: `leak -> ~/.ssh/id_rsa` would reach the reviewer.
            body = read_text_beneath(ctx.repo, rel)
            if body is None:
                continue
            lines = body.splitlines()
            added = "".join(f"+{line}\n" for line in lines)
            text += f"diff --git a/{rel} b/{rel}\nnew file\n--- /dev/null\n+++ b/{rel}\n"
            text += f"@@ -0,0 +1,{len(lines)} @@\n{added}"
    return text


def export_base(ctx: GateContext, paths: list[str], dest: Path) -> list[str]:
    """Write the base version of each path that existed at base under `dest`; return those."""
    listed = git(ctx, "ls-tree", "-r", "-z", ctx.base, "--", *paths) if paths else ""
    entries = []
    for record in filter(None, listed.split("\0")):
        meta, _, rel = record.partition("\t")
        _mode, kind, sha = meta.split()
        if kind == "blob":
            entries.append((sha, rel))
    try:
        blobs = host_git(ctx).blobs([sha for sha, _ in entries])
    except WorkspaceError as exc:
        raise GateUnavailable(f"reading base files at {ctx.base[:12]} failed: {exc}") from None
    for (_, rel), blob in zip(entries, blobs, strict=True):
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(blob)
    return [rel for _, rel in entries]


@contextmanager
def base_worktree(ctx: GateContext) -> Iterator[Path]:
    """The base commit exported into a temporary folder (no `.git`), removed on exit."""
    folder = Path(tempfile.mkdtemp(prefix="karma-base-"))
    tree = folder / "tree"
    tree.mkdir()
    try:
        try:
            host_git(ctx).export(ctx.base, tree, timeout=120)
        except WorkspaceError as exc:
            raise GateUnavailable(f"exporting the base {ctx.base[:12]} failed: {exc}") from None
        yield tree
    finally:
        shutil.rmtree(folder, ignore_errors=True)
