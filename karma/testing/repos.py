"""Real git repositories for tests and benchmarks (no mocks: the git CLI itself)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path


def git(repo: Path, *args: str) -> str:
    """Run git in `repo` and return its stripped stdout; raises on failure."""
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout.strip()


def init_repo(path: Path, *, source: Path | None = None, message: str = "initial") -> Path:
    """A repository at `path` with one commit: a copy of `source`, or a README."""
    if source is not None:
        shutil.copytree(source, path, ignore=shutil.ignore_patterns("__pycache__", ".karma"))
    else:
        path.mkdir(parents=True)
        (path / "README.md").write_text("# sample\n")
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.email", "dev@example.com")
    git(path, "config", "user.name", "Dev")
    git(path, "add", "-A")
    git(path, "commit", "-qm", message)
    return path
