"""A build's history to a worker and an attempt's commit back, as verified git bundles.

An attempt that runs on another machine needs the build branch's tip and gives back one
commit. Both travel as git bundles holding only what the receiver lacks: the coordinator
packs the tip since the tip that worker already has; the worker packs its commit since
the tip it was given. The worker is KARMA's own code, but what it returns was written by
a model in a sandbox, so the coordinator trusts nothing in a returned bundle:

- the header is parsed here (one ref, no prerequisite but the tip it sent);
- the pack is indexed with `index-pack --strict` (git's fsck checks: no `.git` path under
  any spelling, well-formed trees) into a quarantine object folder that reads the store's
  objects as alternates, so nothing lands in the repository before it is accepted;
- the commit must be exactly one commit on top of the tip; its paths stay inside the
  tree (no `..`, no `.git`, no gitlink, no symlink pointing out); sizes are capped;
- only then are the pack and its index moved into the store (index last, as git does).

Every refusal is a `TransferRefused`, every git failure a `GitFailed`.
"""

from __future__ import annotations

import posixpath
import re
import secrets
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from karma.errors import WorkspaceError
from karma.hostgit import HostGit

_SIGNATURES = (b"# v2 git bundle\n", b"# v3 git bundle\n")
_SHA = re.compile(rb"[0-9a-f]{40}")
_HEADER_LIMIT = 64 * 1024
TRANSFER_REF = "refs/karma/transfer/head"
"""The ref a bundle is made from (a bundle needs a ref name; the sender's only)."""


class TransferRefused(WorkspaceError):
    """A bundle is malformed, or its commit breaks a rule of what an attempt may return."""


@dataclass(frozen=True)
class TransferLimits:
    max_bundle_bytes: int = 64 * 1024 * 1024
    max_paths: int = 5_000
    max_blob_bytes: int = 16 * 1024 * 1024


@dataclass(frozen=True)
class BundleHeader:
    prerequisites: tuple[str, ...]
    refs: tuple[tuple[str, str], ...]
    """(commit, ref name) pairs, as the bundle lists them."""
    pack_offset: int


def pack(git: HostGit, head: str, dest: Path, *, since: Sequence[str] = ()) -> Path:
    """Write a bundle of `head` holding only what a receiver of `since` lacks."""
    ref = f"{TRANSFER_REF}-{secrets.token_hex(6)}"  # one per call: attempts pack at once
    git.run("update-ref", "--no-deref", ref, head)
    try:
        git.run("bundle", "create", "-q", str(dest), ref, *(f"^{s}" for s in since))
    finally:
        git.completed("update-ref", "-d", ref)
    return dest


def read_header(path: Path) -> BundleHeader:
    """The bundle's prerequisites and refs, read by KARMA, not by git's bundle code."""
    with path.open("rb") as handle:
        head = handle.read(_HEADER_LIMIT)
    signature = next((s for s in _SIGNATURES if head.startswith(s)), None)
    end = head.find(b"\n\n")
    if signature is None or end < 0:
        raise TransferRefused(f"{path.name} is not a git bundle (v2/v3)")
    prerequisites: list[str] = []
    refs: list[tuple[str, str]] = []
    for line in head[len(signature) : end].split(b"\n"):
        if line.startswith(b"@"):
            if line not in (b"@object-format=sha1",):
                raise TransferRefused(f"bundle capability not accepted: {line[:60]!r}")
        elif line.startswith(b"-"):
            sha = line[1:41]
            if not _SHA.fullmatch(sha):
                raise TransferRefused("bundle prerequisite is not a commit id")
            prerequisites.append(sha.decode())
        else:
            sha, _, name = line.partition(b" ")
            if not _SHA.fullmatch(sha) or not name:
                raise TransferRefused("bundle ref line is malformed")
            refs.append((sha.decode(), name.decode("utf-8", "replace")))
    return BundleHeader(tuple(prerequisites), tuple(refs), end + 2)


def receive(git: HostGit, path: Path, *, limits: TransferLimits | None = None) -> str:
    """Take a bundle from the coordinator into `git`'s store; the commit its ref names.

    The sender is trusted (the coordinator): the checks are of shape, not of policy.
    """
    header = read_header(path)
    if len(header.refs) != 1:
        raise TransferRefused(f"a bundle carries one ref, this one {len(header.refs)}")
    _unpack(git, path, header, limits or TransferLimits(), check=None)
    return header.refs[0][0]


def accept_attempt(
    git: HostGit, path: Path, *, parent: str, limits: TransferLimits | None = None
) -> str:
    """Verify a worker's bundle of one commit on `parent`, then store it; the commit."""
    header = read_header(path)
    limits = limits or TransferLimits()
    if len(header.refs) != 1:
        raise TransferRefused(f"an attempt returns one ref, this bundle {len(header.refs)}")
    stray = [p for p in header.prerequisites if p != parent]
    if stray:
        raise TransferRefused(f"the bundle builds on {stray[0][:12]}, not on the tip sent")
    head = header.refs[0][0]

    def check(quarantined: _Quarantined) -> None:
        _check_commit(quarantined, head, parent, limits)

    _unpack(git, path, header, limits, check=check)
    return head


def _unpack(git: HostGit, path: Path, header: BundleHeader, limits: TransferLimits,
            *, check: Callable[[_Quarantined], None] | None) -> None:  # fmt: skip
    size = path.stat().st_size
    if size > limits.max_bundle_bytes:
        raise TransferRefused(f"bundle of {size} bytes is over {limits.max_bundle_bytes}")
    for sha in header.prerequisites:
        if not git.ok("cat-file", "-e", f"{sha}^{{commit}}"):
            raise TransferRefused(f"the receiver lacks the bundle's base {sha[:12]}")
    objects = git.git_dir / "objects"
    with tempfile.TemporaryDirectory(prefix="incoming-", dir=objects) as scratch:
        quarantine = Path(scratch)
        (quarantine / "pack").mkdir()
        env = {
            "GIT_OBJECT_DIRECTORY": str(quarantine),
            "GIT_ALTERNATE_OBJECT_DIRECTORIES": str(objects),
        }
        with path.open("rb") as handle:
            handle.seek(header.pack_offset)
            data = handle.read()
        done = git.completed(
            "index-pack", "--stdin", "--fix-thin", "--strict",
            f"--max-input-size={limits.max_bundle_bytes}",
            input=data, env=env,
        )  # fmt: skip
        if done.returncode != 0:
            reason = done.stderr.decode("utf-8", "replace").strip().splitlines()
            raise TransferRefused(f"bundle refused by index-pack: {reason[-1] if reason else ''}")
        if not _has(git, env, header.refs[0][0]):
            raise TransferRefused("the bundle does not hold the commit its ref names")
        if check is not None:
            check(_Quarantined(git, env))
        _migrate(quarantine / "pack", objects / "pack")


def _has(git: HostGit, env: dict[str, str], sha: str) -> bool:
    return git.completed("cat-file", "-e", f"{sha}^{{commit}}", env=env).returncode == 0


class _Quarantined:
    """`HostGit.run` with the quarantine's objects visible (for the checks only)."""

    def __init__(self, git: HostGit, env: dict[str, str]) -> None:
        self.git, self.env = git, env

    def raw(self, *args: str, input: bytes | None = None) -> bytes:
        return self.git.raw(*args, input=input, env=self.env)


def _check_commit(git: _Quarantined, head: str, parent: str, limits: TransferLimits) -> None:
    parents = git.raw("rev-list", "--parents", "-n", "1", head).split()[1:]
    if [p.decode() for p in parents] != [parent]:
        raise TransferRefused("an attempt returns one commit whose only parent is the tip sent")
    raw = git.raw("diff-tree", "-r", "-z", "--raw", "--no-renames", parent, head)
    fields = raw.split(b"\0")
    entries: list[tuple[str, str, str]] = []
    for meta, raw_name in zip(fields[0::2], fields[1::2], strict=False):
        if not meta.startswith(b":"):
            continue
        _old_mode, new_mode, _old, new_sha, _status = meta[1:].decode().split()
        entries.append((new_mode, new_sha, raw_name.decode("utf-8", "surrogateescape")))
    if len(entries) > limits.max_paths:
        raise TransferRefused(f"the commit changes {len(entries)} paths, over {limits.max_paths}")
    for mode, _sha, name in entries:
        parts = name.split("/")
        if name.startswith("/") or any(p in ("", ".", "..") or p.lower() == ".git" for p in parts):
            raise TransferRefused(f"the commit writes outside the tree: {name!r}")
        if mode == "160000":
            raise TransferRefused(f"the commit adds a gitlink (submodule) at {name!r}")
    added = [(mode, sha, name) for mode, sha, name in entries if mode != "000000"]
    if not added:
        return
    sizes = git.raw("cat-file", "--batch-check=%(objectsize)", input=_shas(added)).split()
    for (_mode, _sha, name), size in zip(added, sizes, strict=True):
        if int(size) > limits.max_blob_bytes:
            raise TransferRefused(f"{name!r} is {int(size)} bytes, over {limits.max_blob_bytes}")
    links = [(sha, name) for mode, sha, name in added if mode == "120000"]
    for (_sha, name), target in zip(links, _blobs(git, links), strict=True):
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
        if target.startswith("/") or resolved == ".." or resolved.startswith("../"):
            raise TransferRefused(f"symlink {name!r} points outside the tree ({target!r})")


def _shas(entries: Sequence[tuple[str, str, str]]) -> bytes:
    return "".join(f"{sha}\n" for _mode, sha, _name in entries).encode()


def _blobs(git: _Quarantined, links: list[tuple[str, str]]) -> list[str]:
    if not links:
        return []
    out = git.raw("cat-file", "--batch", input="".join(f"{sha}\n" for sha, _ in links).encode())
    targets, at = [], 0
    for _ in links:
        newline = out.index(b"\n", at)
        size = int(out[at:newline].split()[2])
        targets.append(out[newline + 1 : newline + 1 + size].decode("utf-8", "surrogateescape"))
        at = newline + 1 + size + 1
    return targets


def _migrate(source: Path, dest: Path) -> None:
    """Move a quarantined pack into the store: data first, the index (what git reads) last."""
    order = {".pack": 0, ".rev": 1, ".idx": 2}
    for item in sorted(source.iterdir(), key=lambda p: order.get(p.suffix, 1)):
        target = dest / item.name
        if not target.exists():
            item.replace(target)


def init_cache(root: Path) -> HostGit:
    """A worker's bare repository for one build (made on first use)."""
    if not (root / "objects").is_dir():
        root.mkdir(parents=True, exist_ok=True)
        git = HostGit(root)
        git.run("init", "--bare", "-q", str(root))
        return git
    return HostGit(root)


def remove_cache(root: Path) -> None:
    shutil.rmtree(root, ignore_errors=True)
