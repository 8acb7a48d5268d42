"""The compact view of a repository the planner is given.

Four parts: the file tree (from `git ls-files`, so `.gitignore` is respected), the symbol
map of the sources (`karma.symbols`: Python by `ast`, TypeScript/JavaScript, Go and Rust
by what each file exports), the detected stack (recipes/stacks/) and its test command.
The whole is bounded in tokens (characters / 4). A large repository is summarised, not
cut: the tree collapses its deepest directories into counts until it fits its share, and
symbols go in order of centrality, with a count of what was left out.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from karma.errors import WorkspaceError
from karma.home import DataRoots
from karma.hostgit import open_repo
from karma.layout import StackLayout, detect_layout
from karma.recipes import detect_stack
from karma.symbols import symbol_map

CHARS_PER_TOKEN = 4
TREE_SHARE = 0.4
"""The tree's share of the budget; symbols get the rest."""
SKIPPED_DIRS = frozenset({".git", ".venv", "venv", "node_modules", "__pycache__", ".karma"})


@dataclass(frozen=True)
class RepoContext:
    files: tuple[str, ...]
    tree: str
    symbols: str
    stack: str | None
    test_command: str | None
    summarised: bool
    stacks: str = ""
    """Where each stack is when the repository has several (`StackLayout.describe`)."""

    def render(self) -> str:
        stack = self.stack or "unknown"
        parts = [f"Stack: {stack}"]
        if self.stacks:
            parts.append(
                f"Stacks: {self.stacks}. A task works in one stack's folder: its checks "
                "run there, in that stack's sandbox image"
            )
        parts += [
            f"Test command: {self.test_command or 'unknown'}",
            f"Files ({len(self.files)}):",
            self.tree,
        ]
        if self.symbols:
            parts += ["Symbols:", self.symbols]
        return "\n".join(parts)

    @property
    def tokens(self) -> int:
        return len(self.render()) // CHARS_PER_TOKEN


def list_files(repo: Path) -> list[str]:
    """Tracked and untracked-but-not-ignored files; a plain walk outside git."""
    try:
        result = open_repo(repo).completed(
            "ls-files", "-z", "--cached", "--others", "--exclude-standard"
        )
    except WorkspaceError:
        result = None
    if result is not None and result.returncode == 0:
        names = {name for name in result.stdout.decode("utf-8", "replace").split("\0") if name}
        return sorted(name for name in names if (repo / name).is_file())
    found: list[str] = []
    for folder, dirs, files in os.walk(repo):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS and not d.startswith("."))
        base = Path(folder).relative_to(repo)
        found.extend((base / name).as_posix() for name in files)
    return sorted(found)


# -- the tree ----------------------------------------------------------------------------

Node = dict[str, Any]


def _nest(files: list[str]) -> Node:
    root: Node = {}
    for name in files:
        node = root
        *dirs, leaf = name.split("/")
        for part in dirs:
            node = node.setdefault(part + "/", {})
        node[leaf] = None
    return root


def _count(node: Node) -> Counter[str]:
    counts: Counter[str] = Counter()
    for name, child in node.items():
        if child is None:
            counts[PurePosixPath(name).suffix or "(none)"] += 1
        else:
            counts.update(_count(child))
    return counts


def _render_tree(node: Node, depth: int, max_depth: int, lines: list[str]) -> None:
    for name in sorted(node, key=lambda n: (node[n] is None, n)):
        child = node[name]
        pad = "  " * depth
        if child is None:
            lines.append(pad + name)
        elif depth >= max_depth:
            counts = _count(child)
            kinds = ", ".join(f"{n} {ext}" for ext, n in counts.most_common(3))
            lines.append(f"{pad}{name} ({sum(counts.values())} files: {kinds})")
        else:
            lines.append(pad + name)
            _render_tree(child, depth + 1, max_depth, lines)


def render_tree(files: list[str], max_chars: int) -> tuple[str, bool]:
    """The tree at the greatest depth that fits; True when anything was collapsed."""
    root = _nest(files)
    deepest = max((name.count("/") for name in files), default=0)
    for max_depth in range(deepest, -1, -1):
        lines: list[str] = []
        _render_tree(root, 0, max_depth, lines)
        text = "\n".join(lines)
        if len(text) <= max_chars:
            return text, max_depth < deepest
    kept, used = [], 0
    for line in lines:
        if used + len(line) + 1 > max_chars:
            break
        kept.append(line)
        used += len(line) + 1
    kept.append(f"... and {len(lines) - len(kept)} more top-level entries")
    return "\n".join(kept), True


def gather_context(
    repo: Path, *, max_tokens: int = 4000, roots: DataRoots | None = None,
    layout: StackLayout | None = None,
) -> RepoContext:  # fmt: skip
    """The planner's view of `repo`, at most about `max_tokens` tokens; `layout`: the
    stacks the build placed (default: as the listed files place them)."""
    files = list_files(repo)
    budget = max_tokens * CHARS_PER_TOKEN
    tree, tree_cut = render_tree(files, int(budget * TREE_SHARE))
    symbols, symbols_cut = symbol_map(repo, files, budget - len(tree))
    layout = layout if layout is not None else detect_layout(files, roots)
    stack = layout.primary.stack if layout.placed else detect_stack(repo, roots)
    return RepoContext(
        files=tuple(files),
        tree=tree,
        symbols=symbols,
        stack=stack.name if stack else None,
        test_command=stack.test_command if stack else None,
        summarised=tree_cut or symbols_cut,
        stacks=layout.describe() if layout.mixed else "",
    )
