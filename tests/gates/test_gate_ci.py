"""`karma gate --ci` on a runner: masks first, annotations, step summary, outputs, SARIF."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from karma.cli import main
from karma.testing.repos import git, init_repo

FAKE_AWS_KEY = "AKIA" + "Z7QWERTYUIOPASDF"


def test_gate_ci_mode_annotates_and_writes_outputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    repo = init_repo(tmp_path / "repo")
    (repo / "settings.py").write_text(f'KEY = "x"\nAWS_ACCESS_KEY_ID = "{FAKE_AWS_KEY}"\n')
    git(repo, "add", "-A")
    summary, outputs = tmp_path / "summary.md", tmp_path / "out.txt"
    for name, value in {
        "GITHUB_ACTIONS": "true",
        "GITHUB_STEP_SUMMARY": str(summary),
        "GITHUB_OUTPUT": str(outputs),
        "RUNNER_TEMP": str(tmp_path),
        "OPENAI_API_KEY": "sk-proj-" + "a" * 40,
    }.items():
        monkeypatch.setenv(name, value)
    code = main(["-C", str(repo), "gate", "--only", "secrets", "--format", "json"])
    captured = capfd.readouterr()
    assert code == 1
    assert captured.err.startswith("::add-mask::")
    assert "::error file=settings.py,line=2" in captured.out + captured.err
    assert FAKE_AWS_KEY not in captured.out + captured.err + summary.read_text()
    assert "status=failed" in outputs.read_text()
    sarif = json.loads((tmp_path / "karma.sarif").read_text())
    assert sarif["version"] == "2.1.0"
