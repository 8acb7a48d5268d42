"""Opening paths beneath a root without ever following a symlink.

Everything below a worktree may have been written by a sandbox that is still running: a
path checked now can be a symlink a moment later, so nothing here checks and then opens.
Every name is opened relative to a directory descriptor that was itself opened without
following a symlink: in one `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
RESOLVE_NO_MAGICLINKS)` call where the kernel has it (Linux 5.6+), else component by
component with `O_NOFOLLOW | O_DIRECTORY`. A directory swapped for a symlink mid-way
makes the call fail; it never leads out. Walks go the same way, from descriptor to
descriptor, and never descend into a symlink. The root itself is trusted: the host chose
it; everything below it is not. Regular files only: a FIFO or device is refused, never
opened for a blocking read or write.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal

from karma.errors import KarmaError

_SYS_OPENAT2 = 437  # the same number on every architecture (the unified syscall table)
_RESOLVE_NO_MAGICLINKS = 0x02
_RESOLVE_NO_SYMLINKS = 0x04
_RESOLVE_BENEATH = 0x08
_RESOLVE = _RESOLVE_BENEATH | _RESOLVE_NO_SYMLINKS | _RESOLVE_NO_MAGICLINKS
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_WRITE = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
MAX_DEPTH = 64
"""Walks stop descending here: a sandbox can nest directories deeper than any fd limit."""

Kind = Literal["file", "dir", "symlink", "other"]
Owner = tuple[int, int] | None
"""Who new files and directories are given to (the sandbox user when the host is root)."""


class PathRefused(KarmaError, PermissionError):
    """A path that may not be used beneath the root; the message says which and why."""

    def __init__(self, shown: str, reason: str) -> None:
        super().__init__(f"{shown}: {reason}")
        self.reason = reason


class _How(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


_OPENAT2: bool | None = None
"""Whether the kernel has openat2: probed once, on first use (a seccomp filter may hide it)."""
_syscall = ctypes.CDLL(None, use_errno=True).syscall
_syscall.restype = ctypes.c_long


def relative_parts(raw: object) -> tuple[str, ...]:
    """The components of a repository-relative path, or a refusal: absolute paths, `~`,
    `..`, NUL and anything named `.git` (any case) are never used. `()` is the root."""
    if not isinstance(raw, str) or not raw.strip():
        raise PathRefused(repr(raw), "path must be a non-empty string")
    if "\0" in raw:
        raise PathRefused(repr(raw), "path contains a NUL character")
    posix = PurePosixPath(raw.replace("\\", "/"))
    if posix.is_absolute() or raw.startswith("~"):
        raise PathRefused(raw, "absolute paths are not allowed; use a repository path")
    if ".." in posix.parts:
        raise PathRefused(raw, "'..' is not allowed")
    if any(part.lower() == ".git" for part in posix.parts):
        raise PathRefused(raw, "the .git directory is off limits")
    return tuple(part for part in posix.parts if part != ".")


@contextmanager
def opened(root: Path) -> Iterator[int]:
    """A descriptor of the (trusted) root directory, closed afterwards."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        yield fd
    finally:
        os.close(fd)


def _openat2(dir_fd: int, path: str, flags: int, mode: int) -> int:
    """`openat2` beneath `dir_fd`; raises OSError with the kernel's errno."""
    how = _How(flags, mode if flags & os.O_CREAT else 0, _RESOLVE)
    encoded = os.fsencode(path)
    while True:
        fd = _syscall(
            ctypes.c_long(_SYS_OPENAT2),
            ctypes.c_int(dir_fd),
            ctypes.c_char_p(encoded),
            ctypes.byref(how),
            ctypes.c_size_t(ctypes.sizeof(how)),
        )
        if fd >= 0:
            return int(fd)
        code = ctypes.get_errno()
        if code != errno.EINTR:
            raise OSError(code, os.strerror(code), path)


def _have_openat2(dir_fd: int) -> bool:
    global _OPENAT2
    if _OPENAT2 is None:
        try:
            os.close(_openat2(dir_fd, ".", _DIR, 0))
            _OPENAT2 = True
        except OSError as exc:
            if exc.errno not in {errno.ENOSYS, errno.EPERM, errno.EINVAL}:
                raise
            _OPENAT2 = False
    return _OPENAT2


def _why(dir_fd: int, name: str, shown: str, exc: OSError) -> PathRefused | OSError:
    """The refusal for a component that could not be opened, in words for the model."""
    if exc.errno == errno.ENOENT:
        return FileNotFoundError(errno.ENOENT, f"{shown}: no such file or directory")
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError:
        return exc
    if stat.S_ISLNK(st.st_mode):
        return PathRefused(shown, "is a symlink, or goes through one (symlinks are never followed)")
    if exc.errno == errno.EISDIR:
        return PathRefused(shown, "is a directory")
    if exc.errno in {errno.ENOTDIR, errno.ELOOP}:
        return PathRefused(shown, "goes through something that is not a directory")
    if exc.errno == errno.ENXIO:
        return PathRefused(shown, "is not a regular file")
    return exc


def _step(dir_fd: int, name: str, flags: int, mode: int, shown: str) -> int:
    try:
        return os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=dir_fd)
    except OSError as exc:
        raise _why(dir_fd, name, shown, exc) from None


def _walk_open(
    root_fd: int, parts: Sequence[str], flags: int, mode: int, create: bool, owner: Owner
) -> int:
    """Component by component from `root_fd`: every directory opened with O_NOFOLLOW."""
    current = root_fd
    try:
        for index, name in enumerate(parts[:-1]):
            shown = "/".join(parts[: index + 1])
            try:
                nxt = _step(current, name, _DIR, 0, shown)
            except FileNotFoundError:
                if not create:
                    raise FileNotFoundError(
                        errno.ENOENT, f"{'/'.join(parts)}: no such file or directory"
                    ) from None
                with suppress(FileExistsError):  # made meanwhile: opened below like any other
                    os.mkdir(name, 0o755, dir_fd=current)
                nxt = _step(current, name, _DIR, 0, shown)
                _chown(nxt, owner)
            if current != root_fd:
                os.close(current)
            current = nxt
        return _step(current, parts[-1], flags, mode, "/".join(parts))
    finally:
        if current != root_fd:
            os.close(current)


def _chown(fd: int, owner: Owner) -> None:
    if owner is not None:
        os.fchown(fd, *owner)


def open_beneath(
    root_fd: int,
    parts: Sequence[str],
    flags: int,
    *,
    mode: int = 0o644,
    create_dirs: bool = False,
    owner: Owner = None,
) -> int:
    """A descriptor of `root/parts` opened with `flags`; no component is ever a symlink,
    and nothing outside the root is reached. `create_dirs` makes missing parents."""
    if not parts:
        return os.open(".", flags | os.O_CLOEXEC, dir_fd=root_fd)
    if _have_openat2(root_fd):
        try:
            return _openat2(root_fd, "/".join(parts), flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
        except OSError as exc:
            if exc.errno == errno.ENOENT and not create_dirs:
                raise FileNotFoundError(
                    errno.ENOENT, f"{'/'.join(parts)}: no such file or directory"
                ) from None
            # ENOENT with parents to make, or a refusal: the walk below makes the parents
            # or names the component at fault, and is just as confined.
    return _walk_open(root_fd, parts, flags, mode, create_dirs, owner)


def _regular(fd: int, shown: str) -> os.stat_result:
    st = os.fstat(fd)
    if stat.S_ISDIR(st.st_mode):
        raise PathRefused(shown, "is a directory")
    if not stat.S_ISREG(st.st_mode):
        raise PathRefused(shown, "is not a regular file")
    return st


@dataclass(frozen=True)
class Contents:
    data: bytes
    """At most the bound asked for."""
    size: int
    """The file's size, as `fstat` saw it before reading."""


def read_bytes(root_fd: int, parts: Sequence[str], limit: int) -> Contents:
    """At most `limit` bytes of a regular file: its size is checked first, so a sparse
    100 GB file costs one `limit`-sized read."""
    fd = open_beneath(root_fd, parts, _READ)
    try:
        return read_fd(fd, "/".join(parts), limit)
    finally:
        os.close(fd)


def read_fd(fd: int, shown: str, limit: int) -> Contents:
    """At most `limit` bytes of the regular file open at `fd`."""
    size = _regular(fd, shown).st_size
    chunks: list[bytes] = []
    left = min(size, limit)
    while left > 0:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return Contents(b"".join(chunks), size)


def open_file_at(dir_fd: int, name: str, shown: str) -> int:
    """A read descriptor of `name` in the walked directory `dir_fd`, never through a symlink."""
    return _step(dir_fd, name, _READ, 0, shown)


def write_bytes(root_fd: int, parts: Sequence[str], data: bytes, *, owner: Owner = None) -> None:
    """Create or overwrite a regular file beneath the root (parents made as needed);
    truncated only once it is known to be a regular file."""
    if not parts:
        raise PathRefused(".", "is a directory")
    fd = open_beneath(root_fd, parts, _WRITE, create_dirs=True, owner=owner)
    try:
        _regular(fd, "/".join(parts))
        os.ftruncate(fd, 0)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        _chown(fd, owner)
    finally:
        os.close(fd)


def kind_at(root_fd: int, parts: Sequence[str]) -> Kind | None:
    """What `root/parts` is, without following a symlink at any component; None: nothing."""
    if not parts:
        return "dir"
    try:
        fd = open_beneath(root_fd, parts[:-1], _DIR)
    except FileNotFoundError:
        return None
    try:
        st = os.stat(parts[-1], dir_fd=fd, follow_symlinks=False)
    except FileNotFoundError:
        return None
    finally:
        os.close(fd)
    return _kind(st.st_mode)


def _kind(mode: int) -> Kind:
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISDIR(mode):
        return "dir"
    return "file" if stat.S_ISREG(mode) else "other"


@dataclass(frozen=True)
class Entry:
    """One name met by `walk`; `dir_fd` is open only while the walk is at it."""

    path: str
    """Relative to where the walk started, '/'-separated."""
    kind: Kind
    dir_fd: int
    entry: os.DirEntry[str]


def open_dir(root_fd: int, parts: Sequence[str]) -> int:
    """A descriptor of the directory `root/parts`, reached without following a symlink."""
    return open_beneath(root_fd, parts, _DIR)


def walk(dir_fd: int, *, skip: frozenset[str] = frozenset(), prefix: str = "") -> Iterator[Entry]:
    """Every entry below `dir_fd`, sorted, a directory's entries before its
    subdirectories'; symlinks are yielded as such and never followed, directories named
    in `skip` are neither yielded nor entered. A directory swapped mid-walk is skipped."""
    yield from _walk(dir_fd, skip, prefix, 0)


def _walk(dir_fd: int, skip: frozenset[str], prefix: str, depth: int) -> Iterator[Entry]:
    with os.scandir(dir_fd) as scan:
        entries = sorted(scan, key=lambda e: e.name)
    subdirs: list[str] = []
    for item in entries:
        if item.name in skip:
            continue
        if item.is_symlink():
            kind: Kind = "symlink"
        elif item.is_dir(follow_symlinks=False):
            kind = "dir"
            subdirs.append(item.name)
        else:
            kind = "file" if item.is_file(follow_symlinks=False) else "other"
        yield Entry(prefix + item.name, kind, dir_fd, item)
    if depth >= MAX_DEPTH:
        return
    for name in subdirs:
        try:
            child = os.open(name, _DIR, dir_fd=dir_fd)
        except OSError:  # swapped for a symlink or removed since it was listed: not entered
            continue
        try:
            yield from _walk(child, skip, f"{prefix}{name}/", depth + 1)
        finally:
            os.close(child)
