"""`karma build` on a Go project: real Docker, git and Debian's Go toolchain.

The fixture is `examples/go-greet`: a library package and its `go test` tests, no
third-party module. The scripted model builds a two-task feature; each task passes the
stack's checks (`go build`, `go vet`, `go test`) in a sandbox with no network and no
module proxy, and the branch's own suite (run again by itself in the stack image) passes
its three tests. A type error in a first attempt is the `type_error` that the compiler's
`cannot use n (variable of type int) as string value` is, and the next attempt (told the
hint) heals it. A go.sum that needs modules the tree does not vendor fails the first
check with the reason, at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from karma.home import builtin_dir
from karma.testing.repos import init_repo
from tests.engine.conftest import ScriptedBuild
from tests.engine.feature_script import (
    Built,
    branch_is_built,
    conversation,
    feature_script,
    first_attempt,
)

pytestmark = pytest.mark.docker

REQUEST = "Add Shout() and Whisper() to greet"
FIXTURE = builtin_dir("examples") / "go-greet"
COMMAND = "go test ./..."
CASES = {"shout": "ToUpper", "whisper": "ToLower"}


def _task(name: str, deps: list[str]) -> dict[str, Any]:
    return {
        "id": name,
        "title": f"Add {name.title()}()",
        "description": f"Add {name.title()}(name) to {name}.go with a test in {name}_test.go.",
        "deps": deps,
        "estimated_tokens": 3000,
        "kind": "code",
        "files": [f"{name}.go", f"{name}_test.go"],
    }


def _code(name: str) -> str:
    return (
        f'package greet\n\nimport "strings"\n\n// {name.title()} greets name, {name}ing.\n'
        f"func {name.title()}(name string) string {{\n"
        f"\treturn strings.{CASES[name]}(Hello(name))\n}}\n"
    )


def _test(name: str) -> str:
    want = {"shout": "HELLO, ADA!", "whisper": "hello, ada!"}[name]
    return (
        'package greet\n\nimport "testing"\n\n'
        f"func Test{name.title()}(t *testing.T) {{\n"
        f'\tif got := {name.title()}("Ada"); got != "{want}" {{\n'
        f'\t\tt.Errorf("got %q", got)\n\t}}\n}}\n'
    )


def _files(name: str, code: str | None = None) -> dict[str, str]:
    return {f"{name}.go": code or _code(name), f"{name}_test.go": _test(name)}


def script(*first: dict[str, Any]) -> dict[str, Any]:
    tasks = [_task("shout", []), _task("whisper", ["shout"])]
    return feature_script(
        tasks, *first, *(conversation(name, _files(name), COMMAND) for name in CASES)
    )


@pytest.fixture
def build(scripted_build: ScriptedBuild, tmp_path: Path) -> Any:
    repo = init_repo(tmp_path / "greet", source=FIXTURE, message="greet: initial")
    return lambda steps: (repo, *scripted_build(repo, steps, REQUEST))


BUILT = Built(
    stack="go",
    tasks=CASES,
    summary="3 tests: 3 passed, 0 failed, 0 errors, 0 skipped (base collected 1)",
    quoted="`go test -json ./...`",
    files={"shout.go", "shout_test.go", "whisper.go", "whisper_test.go"},
    generated=(".gotmp/",),  # go test's
    suite="go test -v ./...",
)


def _branch_is_built(repo: Path, result: dict[str, Any]) -> None:
    output = branch_is_built(repo, result, BUILT)
    assert output.count("--- PASS: ") == 3 and "--- FAIL" not in output, output


def test_a_go_project_builds_a_two_task_feature(build: Any) -> None:
    repo, code, result = build(script())
    assert code == 0, result
    _branch_is_built(repo, result)
    assert all(t["attempts"] == 1 for t in result["tasks"]), result["tasks"]


def test_a_type_error_is_classified_by_the_go_compiler_and_healed(build: Any) -> None:
    """Attempt 1 of `shout` returns an int where a string is declared: `go build` fails
    with `cannot use n (variable of type int) as string value`, the failure is a
    `type_error`, and attempt 2 passes."""
    wrong = "package greet\n\nfunc Shout(name string) string {\n\tn := len(name)\n\treturn n\n}\n"
    broken = first_attempt("shout", _files("shout", code=wrong), COMMAND)
    repo, code, result = build(script(broken))
    assert code == 0, result
    _branch_is_built(repo, result)
    task = next(t for t in result["tasks"] if t["id"] == "shout")
    assert task["attempts"] == 2, task
    first = task["history"][0]
    assert first["status"] == "failed" and first["class"] == "type_error", first
    assert first["pattern"] == "go.type", first
    assert first["remediation"] == "retry_with_hint", first
