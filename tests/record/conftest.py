"""Fixtures of the record tests: a finished run in a real repository (see runfixture.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from runfixture import FinishedRun, git, make_run

from karma.store import Store


@pytest.fixture
def finished_run(git_repo: Path) -> Iterator[FinishedRun]:
    store = Store(git_repo / ".karma" / "karma.db")
    (git_repo / ".gitignore").write_text(".karma/\n")
    git(git_repo, "add", ".gitignore")
    git(git_repo, "commit", "-qm", "ignore .karma")
    try:
        yield make_run(git_repo, store)
    finally:
        store.close()
