"""`karma build` on a mixed repository: a Python backend at the root, a Node frontend in
`web/` (`examples/mixed`), with real Docker, git, pytest and `node --test`.

The scripted model builds a two-task feature, one task in each stack: `report` (Python,
at the root) runs in the Python stack's image and `badge` (JavaScript, in `web/`) in the
Node stack's, its checks in `web/`. The tests gate runs once per stack: `tests` (pytest)
and `tests:web` (the base's `test` script of `web/package.json`), each counting the
branch's tests. The `report` task also adds a `tools/package.json` whose suite fails:
the layout was fixed from the base commit, so no stack, image or gate comes of it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from karma.home import builtin_dir
from karma.testing.repos import git, init_repo
from tests.engine.conftest import ScriptedBuild

pytestmark = pytest.mark.docker

REQUEST = "Add a stock report to the backend and an out-of-stock badge to the web page"
FIXTURE = builtin_dir("examples") / "mixed"

REPORT = '''"""A one-line stock report."""

from inventory.store import Inventory


def report(stock: Inventory, skus: list[str]) -> str:
    return ", ".join(f"{sku}={stock.quantity(sku)}" for sku in skus)
'''
REPORT_TEST = """from inventory.report import report
from inventory.store import Inventory


def test_report():
    stock = Inventory()
    stock.add("A-1", "Anvil", 2)
    assert report(stock, ["A-1"]) == "A-1=2"
"""
BADGE = """"use strict";

/** The badge beside an item: "out" when none is on hand, else "". */
function badge(quantity) {
  return quantity === 0 ? "out" : "";
}

module.exports = { badge };
"""
BADGE_TEST = """"use strict";
const test = require("node:test");
const assert = require("node:assert/strict");
const { badge } = require("../src/badge.js");

test("badge", () => {
  assert.equal(badge(0), "out");
  assert.equal(badge(3), "");
});
"""
# Written by the model during the run: a new "stack" the layout must not pick up.
PLANTED = json.dumps({"name": "tools", "private": True, "scripts": {"test": "exit 1"}})


def _task(name: str, files: list[str], deps: list[str]) -> dict[str, Any]:
    return {
        "id": name,
        "title": f"Add {name}",
        "description": f"Add {name} in {', '.join(files)}.",
        "deps": deps,
        "estimated_tokens": 3000,
        "kind": "code",
        "files": files,
    }


def _conversation(name: str, files: dict[str, str], check: str) -> dict[str, Any]:
    writes = [{"name": "write_file", "arguments": {"path": p, "content": c}}
              for p, c in files.items()]  # fmt: skip
    return {
        "name": name,
        "match": {"user": [f"Task {name}:"]},
        "replies": [
            {"text": "Writing it.", "tool_calls": writes},
            {"text": "Testing.", "tool_calls": [{"name": "run", "arguments": {"command": check}}]},
            {
                "text": "Done.",
                "tool_calls": [{"name": "finish", "arguments": {"summary": f"Added {name}."}}],
            },
        ],
    }


def script() -> dict[str, Any]:
    plan = {
        "tasks": [
            _task("report", ["inventory/report.py", "tests/test_report.py"], []),
            _task("badge", ["web/src/badge.js", "web/test/badge.test.js"], []),
        ]
    }
    review = {"verdict": "approve", "summary": "Small and tested.", "findings": []}
    backend = {"inventory/report.py": REPORT, "tests/test_report.py": REPORT_TEST,
               "tools/package.json": PLANTED}  # fmt: skip
    frontend = {"web/src/badge.js": BADGE, "web/test/badge.test.js": BADGE_TEST}
    return {
        "conversations": [
            {
                "name": "planner",
                "match": {"tool": "submit_plan"},
                "replies": [
                    {
                        "text": "Two tasks, one a stack.",
                        "tool_calls": [{"name": "submit_plan", "arguments": plan}],
                    }
                ],
            },
            _conversation("report", backend, "python -m pytest -q"),
            _conversation("badge", frontend, "cd web && npm test --silent"),
            {
                "name": "reviewer",
                "match": {"tool": "submit_review"},
                "replies": [
                    {
                        "text": "Reviewed.",
                        "tool_calls": [{"name": "submit_review", "arguments": review}],
                    }
                ],
            },
        ]
    }


def tasks_in_two_stacks(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The build succeeded, `report` in the Python stack's image at the root and `badge`
    in the Node stack's in `web/`, each at its first attempt; its tasks by id."""
    assert result["status"] == "succeeded", result
    tasks = {t["id"]: t for t in result["tasks"]}
    assert {i: (t["stack"], t["folder"]) for i, t in tasks.items()} == {
        "report": ("python", "."),
        "badge": ("node", "web"),
    }
    images = {i: t["sandbox"]["image"] for i, t in tasks.items()}
    assert images["report"].startswith("karma/stack-python:"), images
    assert images["badge"].startswith("karma/stack-node:"), images
    assert all(t["status"] == "succeeded" and t["attempts"] == 1 for t in tasks.values()), tasks
    return tasks


def test_a_mixed_repository_builds_with_tasks_in_two_stack_images(
    scripted_build: ScriptedBuild, tmp_path: Path
) -> None:
    repo = init_repo(tmp_path / "mixed", source=FIXTURE, message="mixed: initial")
    code, result = scripted_build(repo, script(), REQUEST)
    assert code == 0, result
    tasks_in_two_stacks(result)

    gates = {g["name"]: g for g in result["gates"]}
    tests = sorted(name for name in gates if name.split(":")[0] == "tests")
    assert tests == ["tests", "tests:web"], tests  # no gate for the planted tools/
    audits = sorted(name for name in gates if name.split(":")[0] == "audit")
    assert audits == ["audit", "audit:web"], audits
    assert all(gates[name]["status"] == "passed" for name in audits), audits
    assert gates["tests"]["status"] == "passed", gates["tests"]
    assert gates["tests"]["stack"] == "python" and gates["tests"]["folder"] == "."
    summary = gates["tests"]["summary"]  # the base's 3 and the new one; none of web/
    assert summary.startswith("4 tests: 4 passed") and "(base collected 3)" in summary, summary
    web = gates["tests:web"]
    assert web["status"] == "passed" and (web["stack"], web["folder"]) == ("node", "web"), web
    # The base's `test` script in web/, with Node's JUnit reporter: both tests counted.
    assert web["summary"].startswith("2 tests: 2 passed, 0 failed"), web
    assert "(base collected 1)" in web["summary"], web

    files = set(git(repo, "ls-tree", "-r", "--name-only", result["branch"]).split())
    assert {"inventory/report.py", "web/src/badge.js", "tools/package.json"} <= files
