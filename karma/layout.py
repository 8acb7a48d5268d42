"""Where a repository's stacks are: the root's stack and the stacks of its sub-folders.

A repository with a Python backend at its root and a TypeScript frontend in `web/` (or a
monorepo of packages) has several stacks. Its `StackLayout` places each: a folder and
the stack whose marker files are in it (recipes/stacks/), at the root or one or two
folders down; folders that builds generate or vendor (`node_modules`, `target`, ...) and
hidden ones are never looked in. A sub-folder of the root's own stack is part of the
root's project (a Python repository's `docs/requirements.txt`), and a folder inside a
placed one belongs to it: a single-stack repository has a one-entry layout, as before.

The layout is read from the base commit's tree (git objects: regular files only, so a
symlinked marker or folder is no marker) when a build starts, and never again: a change
that adds a `package.json` or a `go.mod` moves no task, image or gate to another stack
(SECURITY.md).
"""

from __future__ import annotations

import fnmatch
import posixpath
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

from karma.home import DataRoots
from karma.hostgit import HostGit
from karma.recipes import Stack, load_stacks

ROOT = PurePosixPath(".")
MAX_DEPTH = 2
"""How many folders down a stack is looked for."""
SKIPPED = frozenset({
    "node_modules", "target", "vendor", "dist", "build", "__pycache__", "venv", "coverage",
    "site-packages",
})  # fmt: skip
"""Folders that builds generate or that hold others' code: never a stack of the repository."""


@dataclass(frozen=True)
class Placed:
    """One stack of a repository, in its folder, with the image its tasks run in."""

    folder: PurePosixPath
    stack: Stack
    image: str = ""
    """The stack image's tag ("" before it is made ready)."""

    @property
    def label(self) -> str:
        """The folder as `karma build --json` and the gate names show it ("." the root)."""
        return str(self.folder)

    def outer(self, relative: str) -> str:
        """A path relative to this folder (a test id of its suite) from the repository's
        root."""
        return relative if self.folder == ROOT else f"{self.folder.as_posix()}/{relative}"

    def inner(self, path: str) -> str | None:
        """`path` (repository-relative) relative to this folder; None outside it."""
        if self.folder == ROOT:
            return path
        pure = PurePosixPath(path)
        if pure == self.folder or self.folder not in pure.parents:
            return None
        return pure.relative_to(self.folder).as_posix()


@dataclass(frozen=True)
class StackLayout:
    """The placed stacks of a repository: the root's first (when it has one), then by folder."""

    placed: tuple[Placed, ...]

    @property
    def primary(self) -> Placed:
        return self.placed[0]

    @property
    def mixed(self) -> bool:
        return len(self.placed) > 1

    def owner(self, path: str) -> Placed | None:
        """The stack `path` belongs to: the deepest placed folder holding it."""
        holding = [p for p in self.placed if p.inner(path) is not None]
        return max(holding, key=lambda p: len(p.folder.parts), default=None)

    def for_paths(self, paths: Iterable[str]) -> Placed:
        """The stack most of `paths` belong to (the earlier on a tie); the primary when
        none belongs anywhere (a task that names no files)."""
        votes = Counter(owner.folder for path in paths if (owner := self.owner(path)))
        if not votes:
            return self.primary
        most = max(votes.values())
        return next(p for p in self.placed if votes.get(p.folder) == most)

    def owns(self, placed: Placed, path: str) -> bool:
        owner = self.owner(path)
        return owner is not None and owner.folder == placed.folder

    def with_images(self, images: Sequence[str]) -> StackLayout:
        return StackLayout(tuple(replace(p, image=i) for p, i in zip(self.placed, images,
                                                                     strict=True)))  # fmt: skip

    def with_stacks(self, stacks: Sequence[Stack]) -> StackLayout:
        return StackLayout(tuple(replace(p, stack=s) for p, s in zip(self.placed, stacks,
                                                                     strict=True)))  # fmt: skip

    def describe(self) -> str:
        """One line for people and the planner: `python (the root), node in web/`."""
        return ", ".join(
            f"{p.stack.name} ({'the root' if p.folder == ROOT else f'in {p.folder}/'})"
            for p in self.placed
        )


def in_folder(workdir: str, folder: PurePosixPath) -> str:
    """The sandbox path of a stack's folder under the workspace's `workdir`."""
    return workdir if folder == ROOT else posixpath.join(workdir, folder.as_posix())


def _stack_of(names: list[str], stacks: list[Stack]) -> Stack | None:
    return next((s for s in stacks if any(fnmatch.filter(names, m) for m in s.detect)), None)


def detect_layout(paths: Iterable[str], roots: DataRoots | None = None) -> StackLayout:
    """The layout of a repository whose regular files are `paths` (repository-relative,
    forward slashes); an empty layout when no stack is known anywhere."""
    stacks = load_stacks(roots)
    names: dict[PurePosixPath, list[str]] = {}
    for path in paths:
        pure = PurePosixPath(path)
        folder = pure.parent
        if len(folder.parts) > MAX_DEPTH:
            continue
        if any(part in SKIPPED or part.startswith(".") for part in folder.parts):
            continue
        names.setdefault(folder, []).append(pure.name)
    root_stack = _stack_of(names.get(ROOT, []), stacks)
    placed = [Placed(ROOT, root_stack)] if root_stack else []
    for folder in sorted(f for f in names if f != ROOT):
        if any(p.folder in folder.parents for p in placed if p.folder != ROOT):
            continue  # inside a placed folder: part of its project
        stack = _stack_of(names[folder], stacks)
        if stack is not None and (root_stack is None or stack.name != root_stack.name):
            placed.append(Placed(folder, stack))
    return StackLayout(tuple(placed))


def base_layout(git: HostGit, commit: str, roots: DataRoots | None = None) -> StackLayout:
    """The layout of `commit`'s tree, read from git's objects (regular files only)."""
    listing = git.raw("ls-tree", "-r", "-z", "--full-tree", commit)
    paths = []
    for record in filter(None, listing.split(b"\0")):
        meta, _, raw = record.partition(b"\t")
        mode, kind, _sha = meta.decode().split()
        if kind == "blob" and mode in ("100644", "100755"):
            paths.append(raw.decode("utf-8", "surrogateescape"))
    return detect_layout(paths, roots)


def commit_layout(repo: Path, commit: str, roots: DataRoots | None = None) -> StackLayout:
    """`base_layout` of the repository `repo` (what `karma gate` and the action place)."""
    from karma.hostgit import discover

    return base_layout(HostGit(discover(repo)[0]), commit, roots)
