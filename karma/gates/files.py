"""Host-side access to the tree under check, which a model or a sandbox may have written.

Gates that run on the host read files of that tree (secrets, sast) or copy it for a
sandbox (tests, bench). Nothing here follows a symlink: a path is opened component by
component from a directory descriptor with `O_NOFOLLOW`, so a committed `leak ->
/root/.ssh/id_rsa` (or a directory swapped for a symlink) is refused, not read; only
regular files are read (a FIFO would block), and never more than a bounded size. A copy
keeps symlinks as symlinks and leaves out everything that is not a file, a folder or a
link, and every `.git` entry.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from karma.confine import open_beneath, opened, relative_parts
from karma.gates.interface import GateUnavailable

READ_LIMIT = 5_000_000
"""Bytes read of one file; a bigger one is not read (a credential is never that deep)."""
COPY_LIMIT = 2 << 30
"""Bytes of regular files a throwaway copy may hold (a sparse 100 GB file is refused)."""
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def _open_beneath(root: Path, rel: str) -> int | None:
    """A descriptor of the regular file `rel` below `root`, reached without a symlink
    (the agent's tools' confinement, `karma.confine`)."""
    try:
        parts = relative_parts(rel)
        with opened(root) as root_fd:
            leaf = open_beneath(root_fd, parts, _FILE)
    except OSError:  # refused (a link, `..`, `.git`) or missing
        return None
    if not stat.S_ISREG(os.fstat(leaf).st_mode):
        os.close(leaf)
        return None
    return leaf


def is_regular(root: Path, rel: str) -> bool:
    """Whether `rel` is a regular file below `root` with no symlink on the way."""
    fd = _open_beneath(root, rel)
    if fd is None:
        return False
    os.close(fd)
    return True


def read_beneath(root: Path, rel: str, limit: int = READ_LIMIT) -> bytes | None:
    """The bytes of the regular file `rel` below `root`; None for a symlink, a special
    file, a missing one or one larger than `limit`."""
    fd = _open_beneath(root, rel)
    if fd is None:
        return None
    with os.fdopen(fd, "rb") as handle:
        if os.fstat(handle.fileno()).st_size > limit:
            return None
        return handle.read(limit + 1)[:limit]


def read_text_beneath(root: Path, rel: str, limit: int = READ_LIMIT) -> str | None:
    data = read_beneath(root, rel, limit)
    if data is None:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def copy_tree(src: Path, dest: Path, *, limit: int = COPY_LIMIT) -> None:
    """Copy `src` to the new folder `dest`: files, folders and symlinks (as symlinks).

    The walk goes by directory descriptors (`O_NOFOLLOW`), so a folder swapped for a
    symlink while it runs is left out rather than followed out of the tree."""
    dest.mkdir(mode=0o755)
    fd = os.open(src, _DIR)
    try:
        _copy_folder(fd, dest, [0], limit)
    finally:
        os.close(fd)


def _copy_folder(fd: int, there: Path, total: list[int], limit: int) -> None:
    folders = []
    with os.scandir(fd) as entries:
        for entry in entries:
            if entry.name == ".git":
                continue  # the sandbox needs no git metadata, and gets none to rewrite
            target = there / entry.name
            info = entry.stat(follow_symlinks=False)
            if stat.S_ISLNK(info.st_mode):
                target.symlink_to(os.readlink(entry.name, dir_fd=fd))
            elif stat.S_ISDIR(info.st_mode):
                target.mkdir(mode=0o755)
                folders.append(entry.name)
            elif stat.S_ISREG(info.st_mode):
                total[0] += info.st_size
                if total[0] > limit:
                    raise GateUnavailable(
                        f"the tree under check holds more than {limit >> 20} MiB of files: "
                        "too large to copy for a sandbox"
                    )
                try:
                    source = os.open(entry.name, _FILE, dir_fd=fd)
                except OSError:
                    continue  # swapped for a link or removed meanwhile: left out
                _copy_file(source, target, info.st_mode)
    for name in folders:
        try:
            child = os.open(name, _DIR, dir_fd=fd)
        except OSError:
            continue  # swapped for a link meanwhile: left out
        try:
            _copy_folder(child, there / name, total, limit)
        finally:
            os.close(child)


def _copy_file(fd: int, dest: Path, mode: int) -> None:
    with os.fdopen(fd, "rb") as source:
        info = os.fstat(source.fileno())
        if not stat.S_ISREG(info.st_mode):
            return  # swapped for something else since the scan
        with open(dest, "xb") as target:
            offset = 0
            while offset < info.st_size:  # in the kernel, no copy through Python
                sent = os.sendfile(target.fileno(), source.fileno(), offset, info.st_size - offset)
                if sent == 0:
                    break
                offset += sent
    dest.chmod(stat.S_IMODE(mode) | stat.S_IRUSR | stat.S_IWUSR)


@contextlib.contextmanager
def throwaway(tree: Path) -> Iterator[Path]:
    """A fresh copy of `tree` in a temporary folder, removed on exit: what a sandbox that
    runs the tree's code gets instead of the tree, so it cannot change what later gates
    (or the host's git) read."""
    folder = Path(tempfile.mkdtemp(prefix="karma-gate-tree-"))
    try:
        copy = folder / "tree"
        copy_tree(tree, copy)
        yield copy
    finally:
        shutil.rmtree(folder, ignore_errors=True)
