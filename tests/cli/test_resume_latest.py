"""`karma resume` with no run id: the repository's one stopped run is resumed (and named);
with several they are listed and it exits 2; a live or finished run is never picked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from karma.cli import main
from karma.store import Store
from karma.testing.demo import REQUEST, demo_config, demo_script, example_project
from karma.testing.repos import init_repo


def _dead_pid() -> int:
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(done.stdout)


def _runs(repo: Path, rows: list[tuple[str, str, int | None]], other: Path | None = None) -> None:
    store = Store(repo / ".karma" / "karma.db")
    for run_id, status, pid in rows:
        store.create_run(run_id, f"request of {run_id}\nsecond line", repo, plan_json="{}", pid=pid)
        store.update_run(run_id, status=status)
    if other is not None:
        store.create_run("other-repo", "elsewhere", other, plan_json="{}")
        store.update_run("other-repo", status="interrupted")
    store.close()


def test_several_stopped_runs_are_listed_and_exit_2(
    git_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _runs(
        git_repo,
        [
            ("r-done", "succeeded", None),
            ("r-ctrl-c", "interrupted", None),
            ("r-killed", "running", _dead_pid()),
            ("r-docker-lost", "infrastructure", None),
            ("r-live", "running", os.getpid()),  # still building: not resumable
        ],
        other=tmp_path / "elsewhere",
    )
    assert main(["-C", str(git_repo), "resume"]) == 2
    err = capsys.readouterr().err
    assert "3 stopped runs: name one" in err and "karma resume <run-id>" in err
    listed = [line for line in err.splitlines() if line.startswith("r-")]  # newest first
    assert [line.split()[0] for line in listed] == ["r-docker-lost", "r-killed", "r-ctrl-c"]
    assert all(line.endswith("second line") for line in listed)  # one line per run
    for left_out in ("r-done", "r-live", "other-repo"):
        assert left_out not in err


def test_no_stopped_run_exits_2_with_a_tip(
    git_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["-C", str(git_repo), "resume"]) == 2
    assert "no run to resume" in capsys.readouterr().err
    _runs(git_repo, [("r-done", "succeeded", None), ("r-live", "running", os.getpid())])
    assert main(["-C", str(git_repo), "resume"]) == 2
    err = capsys.readouterr().err
    assert "no interrupted or killed run to resume" in err and "karma runs" in err


@pytest.mark.docker
def test_a_killed_build_is_resumed_without_its_id(tmp_path: Path, docker_engine: str) -> None:
    script = tmp_path / "script.yaml"
    script.write_text(yaml.safe_dump(demo_script()))
    env = {**os.environ, "KARMA_SCRIPT": str(script), "KARMA_BASE_IMAGE": docker_engine}
    repo = init_repo(tmp_path / "repo", source=example_project())
    karma = [sys.executable, "-m", "karma", "-C", str(repo), "--config", str(demo_config())]
    killed = subprocess.run(
        [*karma, "build", "--json", "--no-gates", REQUEST],
        env={**env, "KARMA_FAILPOINTS": "after_commit:1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert killed.returncode == -9, killed.stderr[-2000:]
    store = Store(repo / ".karma" / "karma.db")
    run_id = store.runs()[0].id
    store.close()
    resumed = subprocess.run(
        [*karma, "resume", "--json"], env=env, capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming {run_id}  running" in resumed.stderr
    result = json.loads(resumed.stdout)
    assert result["run_id"] == run_id and result["status"] == "succeeded"
