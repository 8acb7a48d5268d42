"""The offline demo through the action, as a runner runs it: the scripted model, real
Docker sandboxes and git; then `karma why` on a line the demo wrote, and its report.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from runfixture import ROOT, git, run_action_step

from karma.advisories import serving
from karma.cli import main

REQUEST = "Add CSV export and a low-stock report with a command-line entry point"
MODELS = (
    'small = "scripted:small"\nmedium = "scripted:medium"\nlarge = "scripted:large"\n'
    'reviewer = "scripted:reviewer"\n'
)


@pytest.mark.docker
def test_demo_through_the_action_then_why(docker_engine: str, tmp_path: Path, capsys) -> None:
    repo = tmp_path / "inventory"
    shutil.copytree(
        ROOT / "examples" / "inventory",
        repo,
        ignore=shutil.ignore_patterns("__pycache__", ".karma"),
    )
    git(repo, "init", "-qb", "main")
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=Dev", "-c", "user.email=dev@example.com", "commit", "-qm", "init")
    with serving(ROOT / "examples" / "advisories") as osv:  # no vulnerability service here
        done, outputs, summary = run_action_step(
            repo,
            tmp_path / "runner",
            {"spec": REQUEST, "models": MODELS, "jobs": "2"},
            {
                "KARMA_SCRIPT": str(ROOT / "examples" / "scripts" / "inventory-demo.yaml"),
                "KARMA_BASE_IMAGE": docker_engine,
                "KARMA_OSV_URL": osv.url,
            },
        )
    log = done.stdout + done.stderr
    assert outputs.get("status") == "succeeded", log[-4000:]
    assert done.returncode == 0
    assert "::group::task cli: succeeded" in log
    assert summary.startswith("## ✅ KARMA: succeeded") and "```mermaid" in summary
    assert Path(outputs["report"]).exists()
    run_id = outputs["run-id"]
    assert outputs["branch"] == f"karma/{run_id}"
    result = json.loads(done.stdout[done.stdout.index("{") :])
    assert result["run_id"] == run_id

    assert main(["-C", str(repo), "why", "inventory/cli.py:3", "--json"]) == 0
    why = json.loads(capsys.readouterr().out)
    assert why["run_id"] == run_id and why["task_id"] == "cli"
    assert why["model"] == "scripted:medium" and why["request"] == REQUEST
