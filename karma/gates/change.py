"""The change under check, read from git: changed paths, the diff, base file contents.

Every gate that compares head with base asks this module, so "what changed" has one
meaning: the diff from the base commit to `head` (or, with no head, to the working tree
including untracked files). Nothing here writes to the repository; a base checkout is
a `git worktree` in a temporary folder, removed afterwards.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from karma.gates.interface import GateContext, GateUnavailable


def git(repo: Path, *args: str, timeout: float = 60.0, check: bool = True) -> str:
    try:
        proc = subprocess.run(
            ["git", *args], cwd=repo, capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise GateUnavailable(f"git {args[0]} failed: {exc}") from None
    if check and proc.returncode != 0:
        raise GateUnavailable(f"git {args[0]} failed: {proc.stderr.strip()[:300]}")
    return proc.stdout


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
    paths = set(filter(None, git(ctx.repo, *args).split("\0")))
    if not ctx.head:
        untracked = git(ctx.repo, "ls-files", "--others", "--exclude-standard", "-z")
        paths.update(filter(None, untracked.split("\0")))
    return sorted(paths)


def all_changed_paths(ctx: GateContext) -> list[str]:
    """Like `changed_paths`, deleted paths included (for the approval gate)."""
    args = ["diff", "--name-only", "-z", ctx.base]
    if ctx.head:
        args.append(ctx.head)
    paths = set(filter(None, git(ctx.repo, *args).split("\0")))
    if not ctx.head:
        untracked = git(ctx.repo, "ls-files", "--others", "--exclude-standard", "-z")
        paths.update(filter(None, untracked.split("\0")))
    return sorted(paths)


def diff_text(ctx: GateContext, *, context_lines: int = 3) -> str:
    args = ["diff", "--no-color", "--no-ext-diff", f"-U{context_lines}", ctx.base]
    if ctx.head:
        args.append(ctx.head)
    text = git(ctx.repo, *args)
    if not ctx.head:
        for rel in filter(
            None, git(ctx.repo, "ls-files", "--others", "--exclude-standard", "-z").split("\0")
        ):
            try:
                body = (ctx.repo / rel).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                continue
            lines = body.splitlines()
            added = "".join(f"+{line}\n" for line in lines)
            text += f"diff --git a/{rel} b/{rel}\nnew file\n--- /dev/null\n+++ b/{rel}\n"
            text += f"@@ -0,0 +1,{len(lines)} @@\n{added}"
    return text


def export_base(ctx: GateContext, paths: list[str], dest: Path) -> list[str]:
    """Write the base version of each path that existed at base under `dest`; return those."""
    listed = (
        git(ctx.repo, "ls-tree", "-r", "--name-only", "-z", ctx.base, "--", *paths) if paths else ""
    )
    present = [p for p in listed.split("\0") if p]
    for rel in present:
        try:
            blob = subprocess.run(
                ["git", "show", f"{ctx.base}:{rel}"],
                cwd=ctx.repo,
                capture_output=True,
                timeout=60,
                check=True,
            ).stdout
        except (OSError, subprocess.SubprocessError) as exc:
            raise GateUnavailable(f"git show {ctx.base[:12]}:{rel} failed: {exc}") from None
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(blob)
    return present


@contextmanager
def base_worktree(ctx: GateContext) -> Iterator[Path]:
    """A detached checkout of the base commit in a temporary folder, removed on exit."""
    folder = Path(tempfile.mkdtemp(prefix="karma-base-"))
    tree = folder / "tree"
    git(ctx.repo, "worktree", "add", "--detach", "--quiet", str(tree), ctx.base, timeout=120)
    try:
        yield tree
    finally:
        git(ctx.repo, "worktree", "remove", "--force", str(tree), check=False)
        shutil.rmtree(folder, ignore_errors=True)
        git(ctx.repo, "worktree", "prune", check=False)
