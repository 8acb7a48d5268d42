"""Opening beneath a root: no component is ever a symlink, on both implementations."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from karma import confine


@pytest.fixture(params=["openat2", "walk"])
def implementation(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each test runs with the kernel's openat2 and with the component-by-component walk."""
    if request.param == "walk":
        monkeypatch.setattr(confine, "_OPENAT2", False)
    else:
        monkeypatch.setattr(confine, "_OPENAT2", None)  # probed again
    return str(request.param)


@pytest.fixture
def tree(tmp_path: Path) -> Iterator[tuple[Path, Path, int]]:
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "b" / "f.txt").write_text("inside\n")
    outside.mkdir()
    (outside / "f.txt").write_text("SECRET\n")
    os.symlink(outside, root / "a" / "out")
    os.symlink(outside / "f.txt", root / "a" / "link.txt")
    os.symlink("b", root / "a" / "rel")  # a symlink that stays inside is refused too
    with confine.opened(root) as fd:
        yield root, outside, fd


def test_openat2_is_used_on_this_kernel(
    tree: tuple[Path, Path, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(confine, "_OPENAT2", None)
    assert confine._have_openat2(tree[2]) is True  # Linux >= 5.6 (the CI and dev machines)


@pytest.mark.parametrize("raw", ["/etc/passwd", "../x", "a/../../x", ".git/config", "a/.GIT/x",
                                 "~/x", "", " ", "a\0b"])  # fmt: skip
def test_relative_parts_refuses(raw: str) -> None:
    with pytest.raises(confine.PathRefused):
        confine.relative_parts(raw)


def test_relative_parts() -> None:
    assert confine.relative_parts("./a//b/") == ("a", "b")
    assert confine.relative_parts(".") == ()
    assert confine.relative_parts("a\\b") == ("a", "b")


def test_reads_inside(implementation: str, tree: tuple[Path, Path, int]) -> None:
    assert confine.read_bytes(tree[2], ("a", "b", "f.txt"), 100).data == b"inside\n"


@pytest.mark.parametrize(
    "parts",
    [("a", "out", "f.txt"), ("a", "link.txt"), ("a", "rel", "f.txt"), ("a", "out")],
)
def test_no_symlink_at_any_component(
    implementation: str, tree: tuple[Path, Path, int], parts: tuple[str, ...]
) -> None:
    with pytest.raises(confine.PathRefused, match="symlink"):
        confine.read_bytes(tree[2], parts, 100)
    with pytest.raises(confine.PathRefused, match="symlink"):
        confine.write_bytes(tree[2], (*parts, "new") if parts[-1] == "out" else parts, b"x")
    assert (tree[1] / "f.txt").read_text() == "SECRET\n"
    assert sorted(p.name for p in tree[1].iterdir()) == ["f.txt"]


def test_write_makes_parents_and_refuses_a_file_parent(
    implementation: str, tree: tuple[Path, Path, int]
) -> None:
    confine.write_bytes(tree[2], ("n", "m", "x.py"), b"x = 1\n")
    assert (tree[0] / "n" / "m" / "x.py").read_bytes() == b"x = 1\n"
    with pytest.raises(confine.PathRefused, match="not a directory"):
        confine.write_bytes(tree[2], ("a", "b", "f.txt", "x"), b"")
    with pytest.raises(confine.PathRefused, match="is a directory"):
        confine.write_bytes(tree[2], ("a", "b"), b"")


def test_missing_is_file_not_found(implementation: str, tree: tuple[Path, Path, int]) -> None:
    with pytest.raises(FileNotFoundError, match="a/nope/x: no such file"):
        confine.read_bytes(tree[2], ("a", "nope", "x"), 10)


def test_fifo_is_refused_without_blocking(
    implementation: str, tree: tuple[Path, Path, int]
) -> None:
    os.mkfifo(tree[0] / "a" / "pipe")
    with pytest.raises(confine.PathRefused, match="not a regular file"):
        confine.read_bytes(tree[2], ("a", "pipe"), 10)
    with pytest.raises(confine.PathRefused, match="not a regular file"):
        confine.write_bytes(tree[2], ("a", "pipe"), b"x")


def test_walk_lists_symlinks_as_such_and_never_enters_them(tree: tuple[Path, Path, int]) -> None:
    found = {(e.path, e.kind) for e in confine.walk(tree[2])}
    assert found == {
        ("a", "dir"),
        ("a/b", "dir"),
        ("a/b/f.txt", "file"),
        ("a/out", "symlink"),
        ("a/link.txt", "symlink"),
        ("a/rel", "symlink"),
    }


def test_walk_stops_descending_at_max_depth(tmp_path: Path) -> None:
    deep = tmp_path.joinpath(*["d"] * (confine.MAX_DEPTH + 5))
    deep.mkdir(parents=True)
    with confine.opened(tmp_path) as fd:
        depth = max(e.path.count("/") for e in confine.walk(fd))
    assert depth == confine.MAX_DEPTH
