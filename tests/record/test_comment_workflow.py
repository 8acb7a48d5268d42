"""examples/github/on-issue.yml's `decide` job: a `/karma ...` comment continues the issue's
run on the runner, and only an owner's, member's or collaborator's does.

The comment's text is untrusted: it may reach a step only through `env:` (under the name
`karma ci comment` reads), never a `run:` script or a job's name; the run record comes
only from an artifact this workflow left in this repository, and the bundle may only
bring `karma/*` branches."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / "examples" / "github" / "on-issue.yml"
GUARD = 'contains(fromJSON(\'["OWNER", "MEMBER", "COLLABORATOR"]\'), {})'
UNTRUSTED = re.compile(
    r"\$\{\{\s*github\.event\.(comment\.body|issue\.(title|body)|comment\.user)", re.I
)


def _workflow() -> dict[str, Any]:
    data: dict[Any, Any] = yaml.safe_load(WORKFLOW.read_text())
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads `on` as True
    return data


def _step(job: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in job["steps"] if s.get("name") == name)


def test_only_owners_members_and_collaborators_start_a_job() -> None:
    data = _workflow()
    assert set(data["on"]) == {"issues", "issue_comment"}
    build, decide = data["jobs"]["build"], data["jobs"]["decide"]
    assert "github.event_name == 'issues'" in build["if"]
    assert GUARD.format("github.event.issue.author_association") in build["if"]
    assert "github.event_name == 'issue_comment'" in decide["if"]
    assert "!github.event.issue.pull_request" in decide["if"]
    assert "startsWith(github.event.comment.body, '/karma ')" in decide["if"]
    assert GUARD.format("github.event.comment.author_association") in decide["if"]
    # A job is guarded; a skipped job never joins the queue (no workflow-level group).
    assert "concurrency" not in data
    for job in (build, decide):
        assert job["concurrency"]["cancel-in-progress"] is False


def test_the_comment_never_reaches_a_script() -> None:
    data = _workflow()
    for job in data["jobs"].values():
        for step in job["steps"]:
            assert not UNTRUSTED.search(step.get("run", "")), step.get("name")
            assert not UNTRUSTED.search(str(step.get("name", "")))
            assert not UNTRUSTED.search(str(step.get("with", {}))), step.get("name")
    decide = _step(data["jobs"]["decide"], "Decide and continue")
    env = decide["env"]
    assert env["KARMA_COMMENT_BODY"] == "${{ github.event.comment.body }}"
    assert env["KARMA_COMMENT_ASSOCIATION"] == "${{ github.event.comment.author_association }}"
    assert env["KARMA_COMMENT_AUTHOR"] == "${{ github.event.comment.user.login }}"
    assert 'karma ci comment --run "$RUN_ID"' in decide["run"]
    # KARMA reads those very names.
    source = (ROOT / "karma" / "cli" / "humans.py").read_text()
    for name in env:
        if name.startswith("KARMA_COMMENT_"):
            assert f'"{name}"' in source


def test_the_run_is_restored_only_from_this_workflows_own_record() -> None:
    data = _workflow()
    decide = data["jobs"]["decide"]
    assert decide["permissions"]["actions"] == "read"
    names = [s.get("name") for s in decide["steps"]]
    order = ["Fetch the issue's run record", "Restore the run", "Decide and continue",
             "Export the run record", "Keep the report and the run record"]  # fmt: skip
    assert [n for n in names if n in order] == order
    fetch = _step(decide, "Fetch the issue's run record")["run"]
    assert "select(.workflow_run.head_repository_id == .workflow_run.repository_id)" in fetch
    assert '--jq .path)" = "$workflow"' in fetch
    restore = _step(decide, "Restore the run")["run"]
    assert '"+refs/heads/karma/*:refs/heads/karma/*"' in restore
    assert "karma runs import" in restore
    for job in data["jobs"].values():
        keep = _step(job, "Keep the report and the run record")
        assert keep["if"].startswith("always()")
        assert keep["with"]["name"] == "karma-issue-${{ github.event.issue.number }}"
        assert "karma-run.bundle" in keep["with"]["path"]
        assert "karma.db" not in keep["with"]["path"]
        export = _step(job, "Export the run record")["run"]
        assert "karma runs export" in export and "git bundle create" in export
