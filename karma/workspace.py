"""Git for a build: the build branch, one worktree per task attempt, and integration.

A build branch `karma/<run-id>` is cut from the user's HEAD. Each attempt works in its
own worktree under `.karma/worktrees/` on its own branch, cut from the build branch as it
stands when the attempt starts. Integration computes the merge with
`git merge-tree --write-tree` (no working tree is touched) and moves the build branch
forward by one commit per task with a compare-and-swap `update-ref`; a conflict is
reported, never committed. The user's own working tree and branches are never touched,
nothing is force-pushed, and no history is rewritten. Every git call goes through
`karma.hostgit` with its `--git-dir`/`--work-tree` named explicitly: a worktree's `.git`
file is writable by the sandbox, so it is never read after creation, and a worktree with
a nested repository or a new gitlink is refused before git looks at it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from karma.errors import WorkspaceError
from karma.failpoints import failpoint
from karma.hostgit import (
    GitFailed,
    HostGit,
    NestedRepository,
    discover,
    new_gitlinks,
    refuse_nested_git,
)
from karma.trailers import parse_trailers, with_trailers

_IDENTITY = (("user.name", "KARMA"), ("user.email", "karma@localhost"))


@dataclass(frozen=True)
class Worktree:
    path: Path
    branch: str
    base: str
    """The build-branch commit the worktree was cut from."""
    git_dir: Path


@dataclass(frozen=True)
class Staged:
    """A worktree's change as staged: its paths, and the tree the index holds (what a
    commit would record: checks that passed on one tree hold for an equal one)."""

    paths: tuple[str, ...]
    tree: str


@dataclass(frozen=True)
class MergeOutcome:
    commit: str | None
    conflicts: tuple[str, ...] = ()
    details: str = ""


class Workspace:
    """The user's repository, its git directory read once, before any sandbox ran."""

    def __init__(self, repo: Path) -> None:
        self.repo = repo.resolve()
        git_dir, top = discover(self.repo)
        if top is None:
            raise WorkspaceError(
                f"{self.repo} is a bare repository", tip="run karma inside a working tree"
            )
        self.git_dir = git_dir
        self.root = top
        self.git = HostGit(git_dir)
        """The repository without a work tree: refs, objects, merges."""
        self.worktrees_dir = self.root / ".karma" / "worktrees"
        self.excludes = self.root / ".karma" / "generated.gitignore"
        common = Path(self._run("rev-parse", "--git-common-dir"))
        self.git_common_dir = common if common.is_absolute() else self.git_dir / common
        self._exclude_state_dir()

    def _exclude_state_dir(self) -> None:
        """Keep `.karma/` out of the user's `git status` without editing their files."""
        exclude = self.git_common_dir / "info" / "exclude"
        lines = exclude.read_text().splitlines() if exclude.is_file() else []
        if "/.karma/" not in lines:
            exclude.parent.mkdir(parents=True, exist_ok=True)
            exclude.write_text("\n".join([*lines, "/.karma/"]) + "\n")

    def _run(self, *args: str) -> str:
        return self.git.run(*args)

    def ignore_generated(self, patterns: Sequence[str]) -> None:
        """Keep these gitignore patterns out of every task commit (not the user's tree)."""
        self.excludes.parent.mkdir(parents=True, exist_ok=True)
        self.excludes.write_text("".join(f"{p}\n" for p in patterns))

    def _tree_git(self, worktree: Worktree) -> HostGit:
        git = HostGit(worktree.git_dir, worktree.path)
        if self.excludes.exists():
            git = git.with_config(("core.excludesFile", str(self.excludes)))
        return git

    def _wt_git(self, worktree: Worktree, *args: str) -> str:
        return self._tree_git(worktree).run(*args)

    # -- refs --------------------------------------------------------------------------

    def head(self) -> str:
        return self._run("rev-parse", "HEAD")

    def rev(self, ref: str) -> str | None:
        try:
            return self._run("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
        except WorkspaceError:
            return None

    def tree(self, commit: str) -> str:
        return self._run("rev-parse", f"{commit}^{{tree}}")

    def create_branch(self, branch: str, at: str) -> None:
        if self.rev(branch) is None:
            self._run("branch", branch, at)

    def delete_branch(self, branch: str) -> None:
        with contextlib.suppress(WorkspaceError):  # already gone is fine
            self._run("branch", "-D", branch)

    def rename_branch(self, old: str, new: str) -> None:
        self.delete_branch(new)
        self._run("branch", "-m", old, new)

    def branches(self, pattern: str) -> list[str]:
        listing = self._run("for-each-ref", "--format=%(refname:short)", f"refs/heads/{pattern}")
        return [line for line in listing.splitlines() if line]

    def log_trailers(self, ref: str, base: str) -> list[tuple[str, dict[str, str]]]:
        """(commit, trailers) of each commit in base..ref, oldest first."""
        fmt = "%H%x1f%(trailers:only,unfold)%x1e"
        out = self._run("log", "--reverse", f"--format={fmt}", f"{base}..{ref}")
        result = []
        for record in out.split("\x1e"):
            if not record.strip():
                continue
            sha, _, body = record.strip().partition("\x1f")
            result.append((sha, parse_trailers(body)))
        return result

    # -- worktrees ---------------------------------------------------------------------

    def add_worktree(self, name: str, branch: str, at: str) -> Worktree:
        path = self.worktrees_dir / name
        if path.exists():
            self.remove_worktree(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Detached: the branch is only made for work worth keeping (salvage), which saves
        # a ref write and a delete on every successful attempt.
        self._run("worktree", "add", "--quiet", "--detach", str(path), at)
        # Read before any sandbox can touch it: the worktree's own admin directory.
        git_dir = (path / ".git").read_text().strip().removeprefix("gitdir: ")
        return Worktree(path=path, branch=branch, base=at, git_dir=Path(git_dir))

    def export(self, commit: str, dest: Path) -> None:
        """`commit`'s tree written into the empty folder `dest`, with no `.git` in it."""
        self.git.export(commit, dest)

    def open_worktree(self, path: Path) -> Worktree | None:
        """A worktree left by a dead process, if git still knows it as one of ours."""
        admin = self.git_common_dir / "worktrees" / path.name
        if not (admin / "HEAD").is_file():
            return None
        worktree = Worktree(path=path, branch="", base="HEAD", git_dir=admin)
        head = self._wt_git(worktree, "rev-parse", "HEAD")
        return Worktree(path=path, branch="", base=head, git_dir=admin)

    def remove_worktree(self, path: Path) -> None:
        try:
            self._run("worktree", "remove", "--force", str(path))
        except WorkspaceError:
            shutil.rmtree(path, ignore_errors=True)
            self._run("worktree", "prune")

    def prune(self) -> None:
        """Forget worktrees whose directories are gone."""
        self._run("worktree", "prune")

    def changed_files(self, worktree: Worktree) -> list[str]:
        """Stage everything in the worktree and list what differs from its base.

        What is staged here is what `commit` records: files that checks run afterwards
        leave behind are not part of the task's change. A tree with a `.git` below its
        root is refused before git looks at it (`NestedRepository`). Staging names each
        path (`update-index`), never `add -A`: git's own walk would step into a
        submodule and run its configuration, should one appear after the check (the
        sandbox is still up); a change that adds a gitlink is unstaged and refused.
        """
        refuse_nested_git(worktree.path)
        return self._stage(worktree)

    def staged(self, worktree: Worktree) -> Staged:
        """`changed_files`, with the tree it staged."""
        paths = self.changed_files(worktree)
        return Staged(tuple(paths), self._wt_git(worktree, "write-tree"))

    def _stage(self, worktree: Worktree) -> list[str]:
        git = self._tree_git(worktree)
        # What differs from the index (stat-compared: unchanged files are not read again)
        # and what is new: a task touches a few files of a tree of thousands.
        listing = git.raw("ls-files", "-z", "--modified", "--deleted", "--others",
                          "--exclude-standard")  # fmt: skip
        paths: list[bytes] = []
        for path in dict.fromkeys(filter(None, listing.split(b"\0"))):
            if path.endswith(b"/"):  # git lists a repository it will not enter as `dir/`
                raise NestedRepository(f"nested git repository in the change: {os.fsdecode(path)}")
            try:
                mode = os.lstat(worktree.path / os.fsdecode(path)).st_mode
            except FileNotFoundError:
                mode = 0  # deleted: staged as a removal
            # A folder at a listed path is a submodule (left as it is) or a file turned
            # into a folder (its files are listed; `--replace` drops the file).
            if not stat.S_ISDIR(mode):
                paths.append(path)
        if paths:
            stdin = b"\0".join(paths) + b"\0"
            git.raw("update-index", "--add", "--remove", "--replace", "-z", "--stdin",
                    input=stdin)  # fmt: skip
        raw = git.run("diff", "--cached", "--raw", "--no-renames", "-z", worktree.base)
        links = new_gitlinks(raw)
        if links:
            git.run("rm", "--cached", "--quiet", "--", *links)
            raise NestedRepository(
                "the change adds a submodule (gitlink): " + ", ".join(sorted(links)[:5])
            )
        return [p for p in raw.split("\0")[1::2] if p]

    def diff(self, base: str, head: str) -> str:
        return self._run("diff", base, head)

    def diff_stat(self, base: str, head: str) -> str:
        """`git diff --stat`: what a human is asked to approve, in a few lines."""
        return self._run("diff", "--stat=120", base, head)

    def entry(self, commit: str, path: str) -> str:
        """`path`'s mode and object at `commit` ("" if absent): equal entries, equal change."""
        return self._run("--literal-pathspecs", "ls-tree", "-z", commit, "--", path)

    def user_name(self) -> str:
        """The user's `user.name` for this repository ("" if unset): who decided."""
        try:
            return self._run("config", "--get", "user.name").strip()
        except WorkspaceError:
            return ""

    def commit(self, worktree: Worktree, message: str, trailers: Mapping[str, str]) -> str | None:
        """Commit what `changed_files` staged; None when nothing is staged."""
        body = with_trailers(message, trailers)
        git = HostGit(worktree.git_dir, worktree.path, _IDENTITY)
        try:
            git.run("commit", "--quiet", "--no-verify", "-m", body)
        except WorkspaceError:
            if not self._wt_git(worktree, "diff", "--cached", "--name-only"):
                return None  # nothing staged
            raise
        # The worktree is detached, so its HEAD file (in the admin directory, out of the
        # sandbox's reach) holds the new commit: no process needed to read it.
        return (worktree.git_dir / "HEAD").read_text().strip()

    # -- integration --------------------------------------------------------------------

    def integrate(
        self, build_branch: str, commit: str, message: str, *, tip: str | None = None
    ) -> MergeOutcome:
        """Move `build_branch` forward by one commit holding `commit`'s change merged in.

        The merge is computed without a working tree; on conflict nothing moves. The ref
        update is a compare-and-swap, so a concurrent move is an error, not a lost update.
        """
        tip = tip or self.rev(build_branch)
        if tip is None:
            raise WorkspaceError(f"build branch {build_branch} is gone")
        try:
            tree = self._run(
                "merge-tree", "--write-tree", "--name-only", "--no-messages", tip, commit
            )
        except WorkspaceError:
            listing = self._merge_tree_conflicts(tip, commit)
            return MergeOutcome(None, listing[0], listing[1])
        tree_sha = tree.splitlines()[0]
        new = self.git.with_config(*_IDENTITY).run(
            "commit-tree", tree_sha, "-p", tip, "-m", message
        )
        self._run("update-ref", f"refs/heads/{build_branch}", new, tip)
        failpoint("during_merge")  # the branch moved; the run record does not know yet
        return MergeOutcome(new)

    def _merge_tree_conflicts(self, tip: str, commit: str) -> tuple[tuple[str, ...], str]:
        try:
            self._run("merge-tree", "--write-tree", "--name-only", tip, commit)
        except GitFailed as exc:
            out = exc.stdout.strip().splitlines()
            files = []
            messages = []
            lines = iter(out[1:])
            for line in lines:
                if not line.strip():
                    break
                files.append(line.strip())
            messages = [line.strip() for line in lines if line.strip()]
            return tuple(files), "\n".join(messages)
        return (), ""
