"""KARMA on a GitHub runner: the action's step run as GitHub runs it, the log, the summary,
the outputs and the annotations, and model text that tries to become a workflow command.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from runfixture import EVIL, FinishedRun, git, run_action_step

from karma.action import read_inputs
from karma.ci import SUMMARY_LIMIT, annotation_lines, cap_summary, finish_ci, github_sink
from karma.errors import UsageError
from karma.events import Event
from karma.text.inert import log_safe

KEY = "sk-ant-api03-" + "A1b2C3d4E5f6G7h8I9j0" * 3


def test_action_gate_mode_as_github_runs_it(git_repo: Path, tmp_path: Path) -> None:
    # A pull request adding a credential: the secrets gate blocks with a located finding.
    (git_repo / "karma.toml").write_text(
        "".join(
            f"[gates.overrides.{gate}]\nenabled = false\n"
            for gate in ("sast", "audit", "tests", "bench", "approval", "review")
        )
    )
    git(git_repo, "add", "karma.toml")
    git(git_repo, "commit", "-qm", "gate config")
    git(git_repo, "update-ref", "refs/remotes/origin/main", "HEAD")
    git(git_repo, "switch", "-qc", "feature")
    (git_repo / "settings.py").write_text('NAME = "x"\nAWS_KEY = "AKIAIOSFODNN7EXAMPLQ"\n')
    git(git_repo, "add", "settings.py")
    git(git_repo, "commit", "-qm", "settings")

    done, outputs, summary = run_action_step(
        git_repo, tmp_path, {"mode": "gate", "anthropic-api-key": KEY}, {"GITHUB_BASE_REF": "main"}
    )
    log = done.stdout + done.stderr
    assert done.returncode == 1, log
    assert done.stdout.startswith("::add-mask::" + KEY)
    assert KEY not in log.replace("::add-mask::" + KEY, "")
    errors = [ln for ln in log.splitlines() if ln.startswith("::error ")]
    assert errors and errors[0].startswith("::error file=settings.py,line=2,title=secrets.")
    assert outputs["status"] == "failed"
    assert set(outputs) == {"status", "run-id", "branch", "cost-usd", "report", "sarif"}
    sarif = json.loads(Path(outputs["sarif"]).read_text())
    assert (
        sarif["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"][
            "uri"
        ]
        == "settings.py"
    )
    assert summary.startswith("## ❌ KARMA: failed")
    assert "secrets" in summary and "AKIAIOSFODNN7EXAMPLQ" not in summary


def test_action_gate_without_the_base_branch_reports_why(git_repo: Path, tmp_path: Path) -> None:
    done, outputs, summary = run_action_step(
        git_repo, tmp_path, {"mode": "gate", "base-branch": "release"}
    )
    assert done.returncode == 1, done.stderr
    assert "::error title=KARMA::" in done.stderr and "origin/release" in done.stderr
    assert outputs["status"] == "error" and "origin/release" in summary


def test_action_rejects_a_bad_input_and_says_so(git_repo: Path, tmp_path: Path) -> None:
    done, outputs, summary = run_action_step(
        git_repo, tmp_path, {"spec": "add a thing", "max-cost": "lots"}
    )
    assert done.returncode == 2
    assert "::error title=KARMA::invalid input: action input max-cost" in done.stderr
    assert outputs["status"] == "error"
    assert "max-cost" in summary


def test_action_without_summary_or_output_files_still_runs(git_repo: Path, tmp_path: Path) -> None:
    done, _, _ = run_action_step(
        git_repo, tmp_path, {"mode": "nope"}, {"GITHUB_STEP_SUMMARY": "", "GITHUB_OUTPUT": ""}
    )
    assert done.returncode == 2
    assert (
        "::warning::GITHUB_STEP_SUMMARY is not set: the step summary was not written" in done.stderr
    )
    assert "::warning::GITHUB_OUTPUT is not set: the step outputs were not written" in done.stderr


def test_inputs_are_validated() -> None:
    ok = read_inputs({"KARMA_INPUT_SPEC": "x", "KARMA_INPUT_JOBS": "3", "KARMA_INPUT_MAX_COST": ""})
    assert ok.jobs == 3 and ok.max_cost is None and ok.mode == "build"
    for env, word in [
        ({"KARMA_INPUT_MODE": "deploy"}, "mode"),
        ({"KARMA_INPUT_SPEC": "x", "KARMA_INPUT_JOBS": "0"}, "jobs"),
        ({"KARMA_INPUT_SPEC": "x", "KARMA_INPUT_BASE_BRANCH": "a;rm -rf"}, "base-branch"),
        ({}, "spec"),
    ]:
        with pytest.raises(UsageError, match=word):
            read_inputs(env)


def test_models_input_as_snippet_or_file(tmp_path: Path) -> None:
    inputs = read_inputs(
        {"KARMA_INPUT_SPEC": "x", "KARMA_INPUT_MODELS": 'small = "openai:gpt-5-mini"\n'}
    )
    assert inputs.models_toml(tmp_path) == '[models]\nsmall = "openai:gpt-5-mini"'
    (tmp_path / "m.toml").write_text('[models]\nlarge = "nobody:x"\n')
    bad = read_inputs({"KARMA_INPUT_SPEC": "x", "KARMA_INPUT_MODELS": "m.toml"})
    with pytest.raises(UsageError, match="unknown provider"):
        bad.models_toml(tmp_path)


def test_log_groups_tasks_and_neutralises_model_text() -> None:
    stream = io.StringIO()
    sink = github_sink({"GITHUB_ACTIONS": "true", "OPENAI_API_KEY": "sk-" + "x1Y2z3" * 6}, stream)
    assert sink is not None
    events = [
        Event("run_started", "r1"),
        Event("task_started", "r1", "t1", {"model": "m"}),
        Event("task_started", "r1", "t2"),
        Event("attempt_failed", "r1", "t1", {"attempt": 1, "reason": EVIL}),
        Event("task_succeeded", "r1", "t2"),
        Event("task_escalated", "r1", "t1", {"reason": "::error::forged\n::stop-commands::x"}),
        Event("log", "r1", None, {"message": "##[error]old style\x1b]0;title\x07"}),
    ]
    for event in events:
        sink(event)
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("::add-mask::sk-")
    ours = re.compile(r"^::(add-mask|group|endgroup)::")
    commands = [ln for ln in lines if ln.lstrip().startswith(("::", "##["))]
    assert all(ours.match(ln) for ln in commands), commands
    assert not any("\x1b" in ln or "\x07" in ln for ln in lines)
    assert "::group::task t2: succeeded" in lines and "::group::task t1: escalated" in lines
    assert lines.count("::endgroup::") == 2
    # every event is one line: the forged newline stayed inside its line
    assert sum("attempt_failed" in ln for ln in lines) == 1
    assert github_sink({}, stream) is None


def test_annotations_are_capped_and_escaped() -> None:
    gates = [
        {
            "name": "sast",
            "status": "failed",
            "blocking": True,
            "findings": [
                {
                    "rule": "r,1",
                    "severity": "error",
                    "path": f"a:{i}.py",
                    "line": i,
                    "message": f"bad %\n::error::x {i}",
                }
                for i in range(15)
            ],
        }
    ]
    lines = annotation_lines(gates)
    assert len(lines) == 11 and lines[-1].startswith("::warning::5 more")
    assert lines[0].startswith("::error file=a%3A0.py,line=1,title=r%2C1::sast: bad %25")
    assert all("\n" not in ln for ln in lines)


def test_summary_is_capped_under_githubs_limit() -> None:
    huge = "x" * 10 + "\n```\n" + "y" * (2 * SUMMARY_LIMIT)
    capped = cap_summary(huge)
    assert len(capped.encode()) < SUMMARY_LIMIT
    assert capped.count("```") % 2 == 0 and "cut to stay within" in capped


def test_finish_ci_writes_summary_outputs_and_annotations(
    finished_run: FinishedRun, tmp_path: Path
) -> None:
    result = {
        "run_id": finished_run.run_id,
        "status": "escalated",
        "branch": f"karma/{finished_run.run_id}",
        "cost_usd": 0.0123,
        "report": "r.html",
        "tasks": [],
        "gates": [
            {
                "name": "sast",
                "status": "failed",
                "blocking": True,
                "findings": [
                    {
                        "rule": "k",
                        "severity": "error",
                        "path": "inventory/report.py",
                        "line": 2,
                        "message": EVIL,
                    }
                ],
            }
        ],
    }
    env = {"GITHUB_STEP_SUMMARY": str(tmp_path / "s.md"), "GITHUB_OUTPUT": str(tmp_path / "o")}
    stream = io.StringIO()
    assert finish_ci(result, env, store=finished_run.store, stream=stream) == []
    summary = (tmp_path / "s.md").read_text()
    assert summary.startswith("## 🙋 KARMA: escalated")
    assert summary.index("```mermaid") < summary.index("| task |") < summary.index("### Gates")
    assert "What a human must do" in summary and "<script>" not in summary.split("````text")[0]
    outputs = (tmp_path / "o").read_text().splitlines()
    assert f"run-id={finished_run.run_id}" in outputs and "cost-usd=0.012300" in outputs
    log = stream.getvalue().splitlines()
    assert log[0].startswith("::error file=inventory/report.py,line=2,title=k::sast: ")
    assert "\n::set-output" not in stream.getvalue()


def test_log_safe_breaks_every_command_form() -> None:
    for attack in [
        "::error::x",
        " ::warning::y",
        "a\n::set-env name=A::b",
        "##[error]z",
        "\x1b[2K::debug::q",
        "%0A::error::w",
    ]:
        safe = log_safe(attack)
        assert "::" not in safe and "##[" not in safe and "\n" not in safe and "\x1b" not in safe
