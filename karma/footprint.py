"""How much an attempt has left in its worktree, against `agent.max_worktree_mb`.

The worktree is bind-mounted into the sandbox read-write, so anything `run` starts can
fill the host's disk, and whatever is left there is later staged by host git, which
reads every byte. The worktree is measured when the attempt starts, before its change is
checked and before it is staged: what it grew by beyond the limit fails the attempt.
The measure is a walk from descriptors that never follows a symlink and stops as soon as
the limit is passed; a file counts at its apparent size or its allocated blocks,
whichever is larger (a sparse 100 GB file counts as 100 GB: git would read it all), and
every entry counts at least one 4 KiB block (a million empty files is not free either).

After each `run` the check must cost next to nothing (a walk per tool call would make
every call slower on a large tree): the filesystem's own counters (`statvfs`: blocks and
inodes in use) say how much it grew since the worktree was last measured; only when that
is past a quarter of the limit, or when the filesystem shrank meanwhile (a neighbour
freeing space can hide the worktree's growth), is the worktree walked. A
sparse file takes no blocks, so it is caught by the exact measure before staging.
"""

from __future__ import annotations

import os
from pathlib import Path

from karma import confine

MIN_ENTRY = 4096


def disk_usage(root: Path, *, stop_above: float = float("inf")) -> int:
    """Bytes below `root` as counted above; the walk stops once past `stop_above`."""
    total = 0
    with confine.opened(root) as fd:
        for found in confine.walk(fd):
            try:
                st = found.entry.stat(follow_symlinks=False)
            except OSError:  # gone since it was listed
                continue
            total += max(st.st_size if found.kind == "file" else 0,
                         st.st_blocks * 512, MIN_ENTRY)  # fmt: skip
            if total > stop_above:
                break
    return total


def _fs_used(root: Path) -> int:
    """Bytes and inodes in use on the filesystem of `root`, inodes at MIN_ENTRY each."""
    st = os.statvfs(root)
    return (st.f_blocks - st.f_bfree) * st.f_frsize + (st.f_files - st.f_ffree) * MIN_ENTRY


class Footprint:
    """One attempt's worktree and how much it may grow."""

    def __init__(self, root: Path, limit_mb: float) -> None:
        self.root = root
        self.limit = int(limit_mb * 1024 * 1024)
        self.base = disk_usage(root)
        self._fs_base = self._fs_seen = _fs_used(root)

    def excess(self) -> str | None:
        """Why the worktree is too large now, or None: the exact measure."""
        try:
            used = disk_usage(self.root, stop_above=self.base + self.limit) - self.base
        except FileNotFoundError:  # the worktree is gone: nothing of it can be staged
            return None
        if used <= self.limit:
            self._fs_base = _fs_used(self.root) - max(used, 0)
            return None
        return (
            f"the attempt left more than {self.limit // (1024 * 1024)} MB in its worktree "
            f"(agent.max_worktree_mb): remove large or generated files (build output, "
            f"downloads, caches) or write them outside the repository, e.g. under /tmp"
        )

    def quick_excess(self) -> str | None:
        """The same, measured only when the filesystem grew by a quarter of the limit since
        the last measure, or shrank since the last look (after `run`: next to free). A
        shrink means someone else freed space meanwhile, which can hide the worktree's
        growth in the filesystem's total: then only the walk can tell."""
        used = _fs_used(self.root)
        freed, self._fs_seen = used < self._fs_seen, used
        if not freed and used - self._fs_base <= self.limit // 4:
            return None
        return self.excess()
