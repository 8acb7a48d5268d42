"""A realistic finished run: a real git repository with KARMA's commits, and its run record.

Four tasks: t1 first, t2 and t3 in parallel after it (t2 fails once, is classified and
remediated, then succeeds), t4 after both, escalated. Model text carries the attacks the
reports must neutralise: a <script>, markdown, ANSI, and a `::` workflow command.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from karma.events import Event
from karma.models.codec import canonical
from karma.store import Store

ROOT = Path(__file__).resolve().parents[2]
RUN = "20261124-010000-abc123"
EVIL = (
    "<script>alert(1)</script> **bold** [x](http://evil) \x1b[31mred\x1b[0m\n::set-output name=x::1"
)
REQUEST = "Add CSV export and a low-stock report"


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout.strip()


@dataclass
class FinishedRun:
    repo: Path
    store: Store
    run_id: str
    commits: dict[str, str]


def _commit(repo: Path, files: dict[str, str], message: str, trailers: dict[str, str]) -> str:
    for name, text in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    git(repo, "add", "-A")
    body = message + "\n\n" + "".join(f"{k}: {v}\n" for k, v in trailers.items())
    git(repo, "-c", "user.name=KARMA", "-c", "user.email=karma@localhost", "commit", "-qm", body)
    return git(repo, "rev-parse", "HEAD")


def ts(second: float) -> str:
    minutes, sec = divmod(second, 60)
    return f"2026-11-24T01:{int(minutes):02d}:{sec:06.3f}Z"


PLAN = {
    "request": REQUEST,
    "tasks": [
        {
            "id": "t1",
            "title": "CSV writer",
            "description": "Write inventory/csv_export.py",
            "deps": [],
            "kind": "code",
            "files": ["inventory/csv_export.py"],
            "estimated_tokens": 4000,
            "calibrated_tokens": 4200,
            "tier": "small",
            "model": "scripted:small",
            "estimated_cost_usd": 0.01,
        },
        {
            "id": "t2",
            "title": "Low-stock report",
            "description": "Add low_stock()",
            "deps": ["t1"],
            "kind": "code",
            "files": ["inventory/report.py"],
            "estimated_tokens": 9000,
            "calibrated_tokens": 9500,
            "tier": "medium",
            "model": "scripted:medium",
            "estimated_cost_usd": 0.05,
        },
        {
            "id": "t3",
            "title": "Tests " + EVIL,
            "description": "Tests for the export",
            "deps": ["t1"],
            "kind": "test",
            "files": ["tests/test_csv.py"],
            "estimated_tokens": 3000,
            "calibrated_tokens": 3000,
            "tier": "small",
            "model": "scripted:small",
            "estimated_cost_usd": 0.01,
        },
        {
            "id": "t4",
            "title": "CLI entry point",
            "description": "A console script",
            "deps": ["t2", "t3"],
            "kind": "code",
            "files": ["inventory/cli.py"],
            "estimated_tokens": 5000,
            "calibrated_tokens": 5000,
            "tier": "small",
            "model": "scripted:small",
            "estimated_cost_usd": 0.02,
        },
    ],
    "critical_path": ["t1", "t2", "t4"],
    "estimated_cost_usd": 0.09,
    "generations": [["t1"], ["t2", "t3"], ["t4"]],
}


def _request(text: str) -> str:
    return canonical(
        {
            "system": "You are KARMA's coding agent.",
            "max_tokens": 4096,
            "messages": [{"role": "user", "text": text, "tool_results": []}],
            "tools": [],
            "tool_choice": "auto",
            "purpose": "agent",
        }
    )


def _reply(text: str, path: str | None = None, content: str = "") -> str:
    calls = (
        []
        if path is None
        else [{"id": "c1", "name": "write_file", "arguments": {"path": path, "content": content}}]
    )
    return canonical(
        {
            "text": text,
            "tool_calls": calls,
            "stop_reason": "tool_use",
            "usage": {
                "input_tokens": 900,
                "output_tokens": 120,
                "cache_read_tokens": 0,
                "cache_write_tokens": 0,
            },
            "model": "scripted",
            "latency_s": 0.1,
            "cost_usd": 0.001,
            "raw": {},
        }
    )


def make_run(repo: Path, store: Store, run_id: str = RUN) -> FinishedRun:
    base = git(repo, "rev-parse", "HEAD")
    git(repo, "switch", "-qc", f"karma/{run_id}")
    commits = {}
    files = {
        "t1": {
            "inventory/csv_export.py": "import csv\n\n\ndef export(rows, out):\n"
            "    csv.writer(out).writerows(rows)\n"
        },
        "t2": {
            "inventory/report.py": "def low_stock(items, limit=5):\n"
            "    return [i for i in items if i.qty < limit]\n"
        },
        "t3": {"tests/test_csv.py": "def test_export():\n    assert True\n"},
    }
    attempt_of = {"t1": 1, "t2": 2, "t3": 1}
    for task, content in files.items():
        commits[task] = _commit(
            repo,
            content,
            f"{task} done",
            {
                "Karma-Run": run_id,
                "Karma-Task": task,
                "Karma-Attempt": str(attempt_of[task]),
                "Karma-Model": "scripted:medium" if task == "t2" else "scripted:small",
            },
        )
    git(repo, "switch", "-q", "main")
    head = commits["t3"]

    store.create_run(run_id, REQUEST, repo, base_commit=base, branch=f"karma/{run_id}")
    store.update_run(
        run_id,
        status="escalated",
        head_commit=head,
        cost_usd=0.0123,
        finished_at=ts(95),
        plan_json=json.dumps(PLAN),
        reason="t4: the task needs a decision " + EVIL,
        created_at=ts(0),
    )
    tasks = {
        "t1": ("succeeded", 1, "scripted:small", "small", 0, 20),
        "t2": ("succeeded", 2, "scripted:medium", "medium", 21, 70),
        "t3": ("succeeded", 1, "scripted:small", "small", 22, 50),
        "t4": ("escalated", 1, "scripted:small", "small", 71, 90),
    }
    for tid, (status, attempts, model, tier, start, end) in tasks.items():
        spec = next(t for t in PLAN["tasks"] if t["id"] == tid)
        store.upsert_task(
            run_id,
            tid,
            title=spec["title"],
            kind=spec["kind"],
            status=status,
            tier=tier,
            model=model,
            attempts=attempts,
            tokens_in=1800 * attempts,
            tokens_out=240 * attempts,
            cost_usd=0.002 * attempts,
            started_at=ts(start),
            finished_at=ts(end),
            commit_sha=commits.get(tid),
            image="karma/base:bookworm",
            container_id=f"c-{tid}",
        )
    rows = [
        ("t1", 1, "succeeded", 1, 20, None, None),
        ("t2", 1, "failed", 21, 44, "test_failure", "retry_with_hint"),
        ("t2", 2, "succeeded", 45, 70, None, None),
        ("t3", 1, "succeeded", 22, 50, None, None),
        ("t4", 1, "failed", 71, 90, "ambiguous_spec", "escalate"),
    ]
    for tid, number, status, start, end, cls, remediation in rows:
        aid = store.add_attempt(
            run_id, tid, number, model=tasks[tid][2], tier=tasks[tid][3], started_at=ts(start)
        )
        store.update_attempt(
            aid,
            status=status,
            finished_at=ts(end),
            failure_class=cls,
            remediation=remediation,
            pattern_id=cls and f"py.{cls}",
            summary=("tests failed: " + EVIL) if cls else "done",
            tokens_in=1800,
            tokens_out=240,
            cost_usd=0.002,
        )
        store.add_model_call(
            run_id=run_id,
            task_id=tid,
            attempt=number,
            seq=0,
            purpose="agent",
            model=tasks[tid][2],
            request_hash=f"h{tid}{number}",
            request_json=_request(f"Task {tid}: {PLAN['tasks'][0]['title']}"),
            reply_json=_reply("writing", None),
            input_tokens=900,
            output_tokens=120,
            cost_usd=0.001,
        )
        path = next(iter(files.get(tid, {"x": ""})))
        store.add_model_call(
            run_id=run_id,
            task_id=tid,
            attempt=number,
            seq=1,
            purpose="agent",
            model=tasks[tid][2],
            request_hash=f"g{tid}{number}",
            request_json=_request("continue"),
            reply_json=_reply("Here is the file. " + EVIL, path, files.get(tid, {}).get(path, "")),
            input_tokens=900,
            output_tokens=120,
            cost_usd=0.001,
        )
    store.add_outcome(
        run_id=run_id,
        task_id="t2",
        pattern_id="py.test_failure",
        failure_class="test_failure",
        remediation="retry_with_hint",
        outcome="succeeded",
    )
    store.add_gate_result(
        run_id, name="tests", status="passed", blocking=1, duration_s=3.2, findings_json="[]"
    )
    store.add_gate_result(
        run_id,
        name="sast",
        status="failed",
        blocking=1,
        duration_s=5.0,
        findings_json=json.dumps(
            [
                {
                    "rule": "karma.python.eval-input",
                    "severity": "error",
                    "path": "inventory/report.py",
                    "line": 2,
                    "message": "eval of input " + EVIL,
                }
            ]
        ),
    )
    from datetime import datetime

    def at(second: float) -> datetime:
        return datetime.fromisoformat(ts(second).replace("Z", "+00:00"))

    for kind, task, second, data in [
        ("run_started", None, 0, {"request": REQUEST}),
        ("task_started", "t1", 1, {"model": "scripted:small"}),
        ("task_merged", "t1", 20, {"commit": commits["t1"]}),
        ("task_started", "t2", 21, {}),
        ("task_started", "t3", 22, {}),
        ("attempt_failed", "t2", 44, {"attempt": 1, "reason": EVIL}),
        (
            "task_escalated",
            "t4",
            90,
            {
                "reason": "Decide the CLI name " + EVIL,
                "report_md": "# Escalation\n\n" + EVIL + "\n```\nfence",
                "report_json": {"task": "t4"},
            },
        ),
        (
            "gate_finished",
            None,
            92,
            {
                "name": "tests",
                "status": "passed",
                "summary": "12 tests: 11 passed, 0 failed, 0 errors, 1 skipped",
                "counts": {
                    **{"tests": 12, "passed": 11, "failures": 0},
                    **{"errors": 0, "skipped": 1, "base_tests": 10},
                },
            },
        ),
        ("run_finished", None, 95, {"status": "escalated"}),
    ]:
        store.record_event(Event(kind, run_id, task, data, at(second)))  # type: ignore[arg-type]
    return FinishedRun(repo, store, run_id, commits)


def run_action_step(
    repo: Path, tmp_path: Path, inputs: dict[str, str], extra_env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess[str], dict[str, str], str]:
    """The action's `Run KARMA` step as a runner executes it: its env: block evaluated
    against the inputs (defaults filled in), GITHUB_* variables and files as on a runner,
    and its script run by `bash --noprofile --norc -eo pipefail`."""
    action = yaml.safe_load((ROOT / "action.yml").read_text())
    values = {name: spec.get("default", "") for name, spec in action["inputs"].items()}
    values.update(inputs)
    step = next(s for s in action["runs"]["steps"] if s.get("id") == "karma")
    env = {
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "CI": "true",
        "GITHUB_ACTIONS": "true",
        "GITHUB_WORKSPACE": str(repo),
        "GITHUB_ACTION_PATH": str(ROOT),
        "GITHUB_OUTPUT": str(tmp_path / "output"),
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary"),
        "GITHUB_REPOSITORY": "acme/inventory",
        "GITHUB_EVENT_NAME": "pull_request",
        "RUNNER_TEMP": str(tmp_path / "runner-temp"),
    }
    (tmp_path / "runner-temp").mkdir(parents=True, exist_ok=True)
    for name in ("output", "summary"):
        (tmp_path / name).write_text("")
    for name, expr in step["env"].items():
        match = re.fullmatch(r"\$\{\{ inputs\.([a-z-]+) \}\}", expr)
        assert match, expr
        env[name] = values[match.group(1)]
    env.update(extra_env or {})
    done = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    outputs = dict(line.split("=", 1) for line in (tmp_path / "output").read_text().splitlines())
    return done, outputs, (tmp_path / "summary").read_text()
