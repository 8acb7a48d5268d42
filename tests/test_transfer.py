"""Bundles out to a worker and back, with real git: what is accepted and what is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from karma.hostgit import HostGit
from karma.transfer import (
    TransferLimits,
    TransferRefused,
    accept_attempt,
    init_cache,
    pack,
    read_header,
    receive,
)

IDENTITY = (("user.name", "t"), ("user.email", "t@example.invalid"))


class Plumber:
    """Commits made with plumbing, so a test can build any tree git itself would refuse."""

    def __init__(self, git: HostGit) -> None:
        self.git = git.with_config(*IDENTITY)

    @staticmethod
    def entries(git: HostGit, commit: str) -> dict[str, tuple[str, str]]:
        """The top level of `commit`'s tree: name -> (mode, sha)."""
        found = {}
        for line in git.run("ls-tree", "--full-tree", commit).splitlines():
            meta, name = line.split("\t")
            mode, _kind, sha = meta.split()
            found[name] = (mode, sha)
        return found

    def blob(self, body: bytes) -> str:
        return self.git.raw("hash-object", "-w", "--stdin", input=body).decode().strip()

    def tree(self, entries: dict[str, tuple[str, str]]) -> str:
        """`entries`: name -> (mode, sha); a mode of 040000 names a subtree."""
        lines = []
        for name, (mode, sha) in sorted(entries.items()):
            kind = {"040000": "tree", "160000": "commit"}.get(mode, "blob")
            lines.append(f"{mode} {kind} {sha}\t{name}\n")
        return self.git.raw("mktree", "--missing", input="".join(lines).encode()).decode().strip()

    def files(self, files: dict[str, bytes]) -> str:
        return self.tree({name: ("100644", self.blob(body)) for name, body in files.items()})

    def commit(self, tree: str, *parents: str, message: str = "change") -> str:
        args = ["commit-tree", tree, "-m", message]
        for parent in parents:
            args += ["-p", parent]
        return self.git.run(*args)


@pytest.fixture
def coordinator(tmp_path: Path) -> HostGit:
    git = init_cache(tmp_path / "coordinator.git")
    return git


@pytest.fixture
def worker(tmp_path: Path) -> HostGit:
    return init_cache(tmp_path / "worker" / "build-1.git")


def _tip(coordinator: HostGit, n_files: int = 20) -> str:
    plumb = Plumber(coordinator)
    files = {f"mod{i}.py": f"value = {i}\n".encode() for i in range(n_files)}
    return plumb.commit(plumb.files(files), message="base")


def _send(coordinator: HostGit, worker: HostGit, tip: str, tmp: Path, since: str = "") -> str:
    bundle = pack(coordinator, tip, tmp / "out.bundle", since=[since] if since else [])
    return receive(worker, bundle)


def _attempt(worker: HostGit, tip: str, files: dict[str, bytes]) -> str:
    plumb = Plumber(worker)
    entries = Plumber.entries(worker, tip)
    for name, body in files.items():
        entries[name] = ("100644", plumb.blob(body))
    return plumb.commit(plumb.tree(entries), tip)


def test_a_commit_travels_out_and_back(
    coordinator: HostGit, worker: HostGit, tmp_path: Path
) -> None:
    tip = _tip(coordinator)
    assert _send(coordinator, worker, tip, tmp_path) == tip
    head = _attempt(worker, tip, {"feature.py": b"def f():\n    return 1\n"})
    back = pack(worker, head, tmp_path / "back.bundle", since=[tip])

    assert read_header(back).prerequisites == (tip,)
    assert accept_attempt(coordinator, back, parent=tip) == head
    assert coordinator.run("show", f"{head}:feature.py") == "def f():\n    return 1"
    assert not list((coordinator.git_dir / "objects").glob("incoming-*"))


def test_a_worker_gets_only_what_it_lacks(
    coordinator: HostGit, worker: HostGit, tmp_path: Path
) -> None:
    tip = _tip(coordinator, n_files=300)
    full = pack(coordinator, tip, tmp_path / "full.bundle")
    receive(worker, full)
    plumb = Plumber(coordinator)
    tree = coordinator.run("rev-parse", f"{tip}^{{tree}}")
    listing = coordinator.run("ls-tree", tree).splitlines()
    entries = {ln.split("\t")[1]: (ln.split()[0], ln.split()[2]) for ln in listing}
    entries["new.py"] = ("100644", plumb.blob(b"x = 1\n"))
    next_tip = plumb.commit(plumb.tree(entries), tip)

    delta = pack(coordinator, next_tip, tmp_path / "delta.bundle", since=[tip])
    assert delta.stat().st_size * 5 < full.stat().st_size
    assert receive(worker, delta) == next_tip
    assert worker.ok("cat-file", "-e", f"{next_tip}:new.py")


def _refused(
    coordinator: HostGit,
    worker: HostGit,
    tmp: Path,
    head: str,
    parent: str,
    match: str,
    limits: TransferLimits | None = None,
    since: str = "",
) -> None:
    back = pack(worker, head, tmp / "back.bundle", since=[since or parent])
    with pytest.raises(TransferRefused, match=match):
        accept_attempt(coordinator, back, parent=parent, limits=limits)
    assert not coordinator.ok("cat-file", "-e", head), "a refused commit must not land"


@pytest.fixture
def sent(coordinator: HostGit, worker: HostGit, tmp_path: Path) -> str:
    tip = _tip(coordinator)
    _send(coordinator, worker, tip, tmp_path)
    return tip


def test_a_commit_on_another_base_is_refused(
    coordinator: HostGit, worker: HostGit, tmp_path: Path, sent: str
) -> None:
    first = _attempt(worker, sent, {"a.py": b"a\n"})
    second = _attempt(worker, first, {"b.py": b"b\n"})
    # Two commits: the bundle's base is the tip, but the head's parent is not.
    _refused(coordinator, worker, tmp_path, second, sent, "only parent is the tip", since=sent)
    # A bundle that assumes the coordinator has the worker's first commit.
    _refused(coordinator, worker, tmp_path, second, sent, "not on the tip sent", since=first)


def test_a_merge_commit_is_refused(
    coordinator: HostGit, worker: HostGit, tmp_path: Path, sent: str
) -> None:
    plumb = Plumber(worker)
    side = plumb.commit(plumb.files({"side.py": b"s\n"}))
    merge = plumb.commit(plumb.files({"m.py": b"m\n"}), sent, side)
    _refused(coordinator, worker, tmp_path, merge, sent, "only parent")


@pytest.mark.parametrize(
    ("name", "mode", "match"),
    [
        (".git", "040000", "index-pack|outside the tree"),
        (".GIT", "040000", "index-pack|outside the tree"),
        ("..", "040000", "index-pack|outside the tree"),
        ("vendor", "160000", "gitlink"),
    ],
)
def test_paths_outside_the_tree_and_gitlinks_are_refused(
    coordinator: HostGit,
    worker: HostGit,
    tmp_path: Path,
    sent: str,
    name: str,
    mode: str,
    match: str,
) -> None:
    plumb = Plumber(worker)
    inner = plumb.files({"config": b"[core]\n\tfsmonitor = touch /tmp/pwned\n"})
    sha = inner if mode == "040000" else sent
    base = Plumber.entries(worker, sent)
    base[name] = (mode, sha)
    head = plumb.commit(plumb.tree(base), sent)
    _refused(coordinator, worker, tmp_path, head, sent, match)


@pytest.mark.parametrize("target", [b"/etc/passwd", b"../../outside", b"sub/../../x"])
def test_a_symlink_pointing_out_is_refused(
    coordinator: HostGit, worker: HostGit, tmp_path: Path, sent: str, target: bytes
) -> None:
    plumb = Plumber(worker)
    base = Plumber.entries(worker, sent)
    base["link"] = ("120000", plumb.blob(target))
    head = plumb.commit(plumb.tree(base), sent)
    _refused(coordinator, worker, tmp_path, head, sent, "points outside")


def test_a_symlink_inside_the_tree_is_accepted(
    coordinator: HostGit, worker: HostGit, tmp_path: Path, sent: str
) -> None:
    plumb = Plumber(worker)
    base = Plumber.entries(worker, sent)
    base["link"] = ("120000", plumb.blob(b"mod1.py"))
    head = plumb.commit(plumb.tree(base), sent)
    back = pack(worker, head, tmp_path / "back.bundle", since=[sent])
    assert accept_attempt(coordinator, back, parent=sent) == head


def test_sizes_are_capped(coordinator: HostGit, worker: HostGit, tmp_path: Path, sent: str) -> None:
    big = _attempt(worker, sent, {"big.bin": b"\0" * 200_000})
    many = _attempt(worker, sent, {f"f{i}.py": f"{i}\n".encode() for i in range(30)})
    cases = [
        (big, "over 100000", TransferLimits(max_blob_bytes=100_000)),
        (many, "30 paths, over 10$", TransferLimits(max_paths=10)),
        (big, "bytes is over", TransferLimits(max_bundle_bytes=100)),
    ]
    for head, match, limits in cases:
        _refused(coordinator, worker, tmp_path, head, sent, match, limits=limits)


def test_malformed_bundles_are_refused(coordinator: HostGit, tmp_path: Path, sent: str) -> None:
    garbage = tmp_path / "garbage.bundle"
    garbage.write_bytes(b"#!/bin/sh\nrm -rf /\n\n")
    with pytest.raises(TransferRefused, match="not a git bundle"):
        accept_attempt(coordinator, garbage, parent=sent)

    two_refs = tmp_path / "two.bundle"
    coordinator.run("update-ref", "refs/heads/a", sent)
    coordinator.run("update-ref", "refs/heads/b", sent)
    coordinator.run("bundle", "create", "-q", str(two_refs), "refs/heads/a", "refs/heads/b")
    with pytest.raises(TransferRefused, match="one ref"):
        accept_attempt(coordinator, two_refs, parent=sent)

    truncated = tmp_path / "truncated.bundle"
    good = pack(coordinator, sent, tmp_path / "good.bundle")
    truncated.write_bytes(good.read_bytes()[:-40])
    with pytest.raises(TransferRefused, match="index-pack"):
        accept_attempt(init_cache(tmp_path / "fresh.git"), truncated, parent=sent)


def test_a_receiver_without_the_base_is_told(
    tmp_path: Path, coordinator: HostGit, sent: str
) -> None:
    worker = init_cache(tmp_path / "empty.git")
    plumb = Plumber(coordinator)
    child = plumb.commit(plumb.files({"x.py": b"x\n"}), sent)
    delta = pack(coordinator, child, tmp_path / "delta.bundle", since=[sent])
    with pytest.raises(TransferRefused, match="lacks the bundle's base"):
        receive(worker, delta)
