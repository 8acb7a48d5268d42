"""Data folders are overridden file by file: KARMA_HOME, then the project, then built in."""

from __future__ import annotations

from pathlib import Path

import pytest

from karma.home import builtin_dir, data_path
from karma.recipes import detect_stack, load_failure_patterns


def test_a_project_override_of_one_file_keeps_the_rest_built_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KARMA_HOME", raising=False)
    repo = tmp_path / "repo"
    (repo / ".karma" / "recipes" / "learned").mkdir(parents=True)
    (repo / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    # what `karma memory reflect --apply` leaves: only learned/ in the project
    assert data_path("recipes", "stacks", repo=repo) == builtin_dir("recipes") / "stacks"
    assert detect_stack(repo) is not None
    own = repo / ".karma" / "recipes" / "prices.toml"
    own.write_text("updated = 2026-01-01\n[models]\n")
    assert data_path("recipes", "prices.toml", repo=repo) == own
    assert load_failure_patterns(repo)


def test_karma_home_comes_before_the_project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home, repo = tmp_path / "home", tmp_path / "repo"
    for root in (home, repo / ".karma"):
        (root / "quality_gates").mkdir(parents=True)
        (root / "quality_gates" / "default.toml").write_text("order = []\n")
    monkeypatch.setenv("KARMA_HOME", str(home))
    assert data_path("quality_gates", "default.toml", repo=repo) == (
        home / "quality_gates" / "default.toml"
    )
