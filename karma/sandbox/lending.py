"""A worktree lent to the sandbox's user, and given back.

The sandbox runs as an unprivileged user; the worktree on the host belongs to whoever
runs KARMA. When KARMA runs as root, the worktree is given to the sandbox user for the
sandbox's life (`lchown`, never following a symlink the sandbox may have made), again
before each command for whatever the host wrote meanwhile (the agent's file tools run on
the host), and back to its owner when the sandbox closes, whatever the sandbox left in it
(git is told the tree is safe, so a crash in between does no harm). When KARMA is not
root, commands run as the host's own uid:gid and nothing is lent.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

from karma.sandbox.interface import SandboxError


def user_ids(user: str) -> tuple[int, int]:
    """The uid and gid of `sandbox.user` (`uid:gid`, numeric)."""
    uid, _, gid = user.partition(":")
    try:
        return int(uid), int(gid or uid)
    except ValueError:
        raise SandboxError(f"sandbox user {user!r} must be numeric uid:gid") from None


@dataclass(frozen=True)
class Lent:
    """A workspace lent to the sandbox user (`uid`:`gid`), and its owner to give it back to."""

    path: Path
    uid: int
    gid: int
    owner_uid: int
    owner_gid: int

    def refresh(self) -> None:
        """Lend what the host wrote since (root-owned files the sandbox could not change)."""
        chown_tree(self.path, self.uid, self.gid)

    def give_back(self) -> None:
        chown_tree(self.path, self.owner_uid, self.owner_gid)


def chown_tree(root: Path, uid: int, gid: int) -> None:
    """lchown `root` and everything under it that is not uid:gid already."""
    folders = [root]
    try:
        top = root.lstat()
    except FileNotFoundError:  # the worktree is gone already (removed at interrupt)
        return
    if (top.st_uid, top.st_gid) != (uid, gid):
        os.lchown(root, uid, gid)
    while folders:
        try:
            entries = os.scandir(folders.pop())
        except FileNotFoundError:  # removed meanwhile (a worktree cleaned up at interrupt)
            continue
        with entries:
            for entry in entries:
                with contextlib.suppress(FileNotFoundError):  # deleted meanwhile
                    stat = entry.stat(follow_symlinks=False)
                    if (stat.st_uid, stat.st_gid) != (uid, gid):
                        os.lchown(entry.path, uid, gid)
                    if entry.is_dir(follow_symlinks=False):
                        folders.append(Path(entry.path))


def lend_workspace(workspace: Path, uid: int, gid: int) -> Lent | None:
    """Give the workspace to the sandbox user when we are root; say how to take it back."""
    if os.getuid() != 0:
        return None
    stat = workspace.stat()
    if (stat.st_uid, stat.st_gid) == (uid, gid):
        return None
    lent = Lent(workspace, uid, gid, stat.st_uid, stat.st_gid)
    lent.refresh()
    return lent
