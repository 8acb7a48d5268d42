"""Worktrees and integration on real git repositories."""

from __future__ import annotations

from pathlib import Path

import pytest

from karma.errors import WorkspaceError
from karma.testing.repos import git
from karma.workspace import Workspace


def test_tasks_integrate_one_commit_each_without_touching_the_user(git_repo: Path) -> None:
    (git_repo / "notes.txt").write_text("user's uncommitted work\n")
    ws = Workspace(git_repo)
    base = ws.head()
    ws.create_branch("karma/r1", base)
    one = ws.add_worktree("r1/a-1", "karma-work/r1/a-1", base)
    two = ws.add_worktree("r1/b-1", "karma-work/r1/b-1", base)
    (one.path / "a.py").write_text("A = 1\n")
    (two.path / "b.py").write_text("B = 2\n")
    assert ws.changed_files(one) == ["a.py"] and ws.changed_files(two) == ["b.py"]
    c1 = ws.commit(one, "task a", {"Karma-Task": "a"})
    c2 = ws.commit(two, "task b", {"Karma-Task": "b"})
    assert c1 and c2
    first = ws.integrate("karma/r1", c1, "task a\n\nKarma-Task: a\n")
    second = ws.integrate("karma/r1", c2, "task b\n\nKarma-Task: b\n")
    assert first.commit and second.commit
    log = ws.log_trailers("karma/r1", base)
    assert [t["Karma-Task"] for _, t in log] == ["a", "b"]
    assert git(git_repo, "show", "karma/r1:b.py") == "B = 2"
    assert git(git_repo, "rev-parse", "--abbrev-ref", "HEAD") == "main"
    assert git(git_repo, "rev-parse", "HEAD") == base
    assert git(git_repo, "status", "--porcelain") == "?? notes.txt"


def test_conflict_is_detected_and_the_branch_does_not_move(git_repo: Path) -> None:
    ws = Workspace(git_repo)
    base = ws.head()
    ws.create_branch("karma/r2", base)
    one = ws.add_worktree("r2/a-1", "karma-work/r2/a-1", base)
    two = ws.add_worktree("r2/b-1", "karma-work/r2/b-1", base)
    (one.path / "README.md").write_text("# one\n")
    (two.path / "README.md").write_text("# two\n")
    ws.changed_files(one)
    ws.changed_files(two)
    c1 = ws.commit(one, "a", {})
    c2 = ws.commit(two, "b", {})
    assert c1 and c2
    assert ws.integrate("karma/r2", c1, "a").commit
    tip = ws.rev("karma/r2")
    outcome = ws.integrate("karma/r2", c2, "b")
    assert outcome.commit is None
    assert outcome.conflicts == ("README.md",)
    assert ws.rev("karma/r2") == tip
    assert "<<<<<<<" not in git(git_repo, "show", "karma/r2:README.md")


def test_worktree_git_file_tampering_does_not_redirect_commits(
    git_repo: Path, tmp_path: Path
) -> None:
    ws = Workspace(git_repo)
    base = ws.head()
    wt = ws.add_worktree("r3/a-1", "karma-work/r3/a-1", base)
    (wt.path / ".git").write_text(f"gitdir: {tmp_path}\n")  # what a sandboxed command could do
    (wt.path / "x.py").write_text("X = 1\n")
    ws.changed_files(wt)
    sha = ws.commit(wt, "x", {})
    assert sha and git(git_repo, "show", f"{sha}:x.py") == "X = 1"


def test_not_a_repository(tmp_path: Path) -> None:
    with pytest.raises(WorkspaceError, match="not a git repository"):
        Workspace(tmp_path)


def test_state_dir_is_excluded_from_status(git_repo: Path) -> None:
    Workspace(git_repo)
    (git_repo / ".karma").mkdir()
    (git_repo / ".karma" / "karma.db").write_text("x")
    assert git(git_repo, "status", "--porcelain") == ""


def test_staging_by_name_records_what_add_all_would(git_repo: Path) -> None:
    """Deletions, a file turned into a folder, symlinks, modes, ignored files."""
    (git_repo / "gone.txt").write_text("bye\n")
    (git_repo / "becomes_dir").write_text("file\n")
    (git_repo / "tool.sh").write_text("#!/bin/sh\n")
    (git_repo / ".gitignore").write_text("*.log\n")
    git(git_repo, "add", "-A")
    git(git_repo, "commit", "-qm", "files")
    ws = Workspace(git_repo)
    wt = ws.add_worktree("r1/a-1", "karma-work/r1/a-1", ws.head())
    (wt.path / "gone.txt").unlink()
    (wt.path / "becomes_dir").unlink()
    (wt.path / "becomes_dir").mkdir()
    (wt.path / "becomes_dir" / "inner.py").write_text("I = 1\n")
    (wt.path / "link").symlink_to("tool.sh")
    (wt.path / "tool.sh").chmod(0o755)
    (wt.path / "debug.log").write_text("ignored\n")
    (wt.path / "new dir").mkdir()
    (wt.path / "new dir" / "spaced name.txt").write_text("s\n")
    changed = ws.changed_files(wt)
    assert changed == sorted(
        [
            "becomes_dir",
            "becomes_dir/inner.py",
            "gone.txt",
            "link",
            "new dir/spaced name.txt",
            "tool.sh",
        ]
    )
    commit = ws.commit(wt, "task", {})
    assert commit
    tree = git(git_repo, "ls-tree", "-r", commit)
    assert "120000 blob" in tree and "100755 blob" in tree and "debug.log" not in tree
    assert "gone.txt" not in tree and "becomes_dir/inner.py" in tree


def test_the_staged_tree_names_the_contents_not_the_paths(git_repo: Path) -> None:
    """What a run of the checks ahead is matched by: the same paths with other contents
    (or another mode) are another tree; what the checks leave behind is not staged."""
    ws = Workspace(git_repo)
    ws.ignore_generated(["__pycache__/"])
    wt = ws.add_worktree("r1/a-1", "karma-work/r1/a-1", ws.head())
    (wt.path / "a.py").write_text("A = 1\n")
    first = ws.staged(wt)
    (wt.path / "__pycache__").mkdir()
    (wt.path / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"\0")
    assert ws.staged(wt) == first and first.paths == ("a.py",)
    (wt.path / "a.py").write_text("A = 2\n")  # same path, same size
    second = ws.staged(wt)
    assert second.paths == first.paths and second.tree != first.tree
    (wt.path / "a.py").chmod(0o755)
    assert ws.staged(wt).tree != second.tree
