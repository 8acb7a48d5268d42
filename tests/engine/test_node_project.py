"""`karma build` on a TypeScript/Node project: real Docker, git, npm, tsc and `node --test`.

The fixture is `examples/node-tally`: TypeScript in `src/` compiled by `tsc` to `dist/`,
CommonJS tests in `test/` run by `node --test`, typescript a devDependency pinned by a
`package-lock.json` that npm made. The scripted model builds a two-task feature; each
task passes the stack's checks (the `test` script, `tsc && node --test`: the stack's own
`tsc --noEmit` is not run besides a script that compiles) in a sandbox with no network,
and the branch's own suite (run again by itself in the stack image) passes its three tests.
A type error in a first attempt is the `type_error` that tsc's `error TS2322` is, and
the next attempt (told the hint) heals it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from karma.home import builtin_dir
from karma.testing.repos import init_repo
from tests.engine.conftest import ScriptedBuild
from tests.engine.feature_script import Built, branch_is_built

pytestmark = pytest.mark.docker

REQUEST = "Add sub() and mul() to tally"
FIXTURE = builtin_dir("examples") / "node-tally"


def _task(name: str, deps: list[str]) -> dict[str, Any]:
    return {
        "id": name,
        "title": f"Add {name}()",
        "description": f"Add {name}(a, b) to src/{name}.ts with a test in test/{name}.test.js.",
        "deps": deps,
        "estimated_tokens": 3000,
        "kind": "code",
        "files": [f"src/{name}.ts", f"test/{name}.test.js"],
    }


def _code(name: str, op: str) -> str:
    return f"export function {name}(a: number, b: number): number {{\n  return a {op} b;\n}}\n"


def _test(name: str, op: str) -> str:
    return (
        '"use strict";\nconst test = require("node:test");\n'
        'const assert = require("node:assert/strict");\n'
        f'const {{ {name} }} = require("../dist/{name}.js");\n\n'
        f'test("{name}", () => {{\n  assert.equal({name}(6, 3), 6 {op} 3);\n}});\n'
    )


def _conversation(name: str, op: str, code: str | None = None) -> dict[str, Any]:
    calls = [
        {
            "name": "write_file",
            "arguments": {"path": f"src/{name}.ts", "content": code or _code(name, op)},
        },
        {
            "name": "write_file",
            "arguments": {"path": f"test/{name}.test.js", "content": _test(name, op)},
        },
    ]
    return {
        "name": name,
        "match": {"user": [f"Task {name}:"]},
        "replies": [
            {"text": "Writing it.", "tool_calls": calls},
            {
                "text": "Testing.",
                "tool_calls": [{"name": "run", "arguments": {"command": "npm test"}}],
            },
            {
                "text": "Done.",
                "tool_calls": [{"name": "finish", "arguments": {"summary": f"Added {name}()."}}],
            },
        ],
    }


def script(*first: dict[str, Any]) -> dict[str, Any]:
    plan = {"tasks": [_task("sub", []), _task("mul", ["sub"])]}
    review = {"verdict": "approve", "summary": "Small, typed, tested.", "findings": []}
    return {
        "conversations": [
            {
                "name": "planner",
                "match": {"tool": "submit_plan"},
                "replies": [
                    {
                        "text": "Two tasks.",
                        "tool_calls": [{"name": "submit_plan", "arguments": plan}],
                    }
                ],
            },
            *first,
            _conversation("sub", "-"),
            _conversation("mul", "*"),
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


@pytest.fixture
def build(scripted_build: ScriptedBuild, tmp_path: Path) -> Any:
    repo = init_repo(tmp_path / "tally", source=FIXTURE, message="tally: initial")
    return lambda steps: (repo, *scripted_build(repo, steps, REQUEST))


BUILT = Built(
    stack="node",
    tasks={"sub", "mul"},
    # The base's `test` script with Node's JUnit reporter: the tests are counted.
    summary="3 tests: 3 passed, 0 failed",
    quoted="(base collected 1)",
    files={"src/sub.ts", "src/mul.ts", "test/sub.test.js", "test/mul.test.js"},
    generated=("dist/", "node_modules/", "coverage/"),  # tsc's and npm's
    suite="npm test --silent",  # the base's test and both new
)


def _branch_is_built(repo: Path, result: dict[str, Any]) -> None:
    output = branch_is_built(repo, result, BUILT)
    tests = next(g for g in result["gates"] if g["name"] == "tests")
    assert "from package.json scripts.test" in tests["summary"], tests
    assert "# pass 3" in output and "# fail 0" in output, output


def test_a_typescript_project_builds_a_two_task_feature(build: Any) -> None:
    repo, code, result = build(script())
    assert code == 0, result
    _branch_is_built(repo, result)
    assert all(t["attempts"] == 1 for t in result["tasks"]), result["tasks"]


def test_a_type_error_is_classified_by_tsc_and_healed_on_the_next_attempt(build: Any) -> None:
    """Attempt 1 of `sub` returns a string where a number is declared: the test script's
    `tsc` fails with error TS2322, the failure is a `type_error`, and attempt 2 passes."""
    wrong = "export function sub(a: number, b: number): number {\n  return `${a - b}`;\n}\n"
    broken = _conversation("sub", "-", code=wrong)
    broken["name"] = "sub-broken"
    broken["match"] = {"user": ["Task sub:", "Attempt 1\n"]}
    repo, code, result = build(script(broken))
    assert code == 0, result
    _branch_is_built(repo, result)
    task = next(t for t in result["tasks"] if t["id"] == "sub")
    assert task["attempts"] == 2, task
    first = task["history"][0]
    assert first["status"] == "failed" and first["class"] == "type_error", first
    assert first["pattern"] == "js.tsc.type", first
    assert first["remediation"] == "retry_with_hint", first
