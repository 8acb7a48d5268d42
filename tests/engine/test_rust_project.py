"""`karma build` on a Rust project: real Docker, git and Debian's cargo and rustc.

The fixture is `examples/rust-greet`: a library crate with unit tests, no third-party
crate. The scripted model builds a two-task feature; each task passes the stack's
checks (`cargo build`, clippy, `cargo test`, all `--offline`) in a sandbox with no
network, and the branch's own suite (run again by itself in the stack image) passes its
three tests. A type error in a first attempt is the `type_error` that rustc's
`error[E0308]: mismatched types` is, and the next attempt (told the hint) heals it.
"""

from __future__ import annotations

import re
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

REQUEST = "Add shout() and whisper() to greet"
FIXTURE = builtin_dir("examples") / "rust-greet"
COMMAND = "cargo test --offline"
CASES = {"shout": "to_uppercase", "whisper": "to_lowercase"}
MODULES = {
    "shout": "pub mod hello;\npub mod shout;\n",
    "whisper": "pub mod hello;\npub mod shout;\npub mod whisper;\n",
}


def _task(name: str, deps: list[str]) -> dict[str, Any]:
    return {
        "id": name,
        "title": f"Add {name}()",
        "description": f"Add {name}(name) to src/{name}.rs, with its unit test.",
        "deps": deps,
        "estimated_tokens": 3000,
        "kind": "code",
        "files": [f"src/{name}.rs", "src/lib.rs"],
    }


def _code(name: str) -> str:
    want = {"shout": "HELLO, ADA!", "whisper": "hello, ada!"}[name]
    return (
        f"/// Greets `name`, {name}ing.\npub fn {name}(name: &str) -> String {{\n"
        f"    crate::hello::hello(name).{CASES[name]}()\n}}\n\n"
        "#[cfg(test)]\nmod tests {\n    #[test]\n"
        f'    fn {name}() {{\n        assert_eq!(super::{name}("Ada"), "{want}");\n    }}\n}}\n'
    )


def _files(name: str, code: str | None = None) -> dict[str, str]:
    lib = "//! Says hello.\n\n" + MODULES[name]
    return {f"src/{name}.rs": code or _code(name), "src/lib.rs": lib}


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
    stack="rust",
    tasks=CASES,
    summary="3 tests: 3 passed, 0 failed, 0 errors, 0 skipped (base collected 1)",
    quoted="`cargo test --offline`",
    files={"src/shout.rs", "src/whisper.rs", "Cargo.lock"},
    generated=("target/",),  # cargo's
    suite="cargo test --offline",
    timeout_s=600,
)


def _branch_is_built(repo: Path, result: dict[str, Any]) -> None:
    output = branch_is_built(repo, result, BUILT)
    assert re.search(r"^test result: ok\. 3 passed; 0 failed", output, re.M), output


def test_a_rust_project_builds_a_two_task_feature(build: Any) -> None:
    repo, code, result = build(script())
    assert code == 0, result
    _branch_is_built(repo, result)
    assert all(t["attempts"] == 1 for t in result["tasks"]), result["tasks"]


def test_a_type_error_is_classified_by_rustc_and_healed(build: Any) -> None:
    """Attempt 1 of `shout` returns a usize where a String is declared: `cargo build`
    fails with `error[E0308]: mismatched types`, the failure is a `type_error`, and
    attempt 2 passes."""
    wrong = "pub fn shout(name: &str) -> String {\n    name.len()\n}\n"
    broken = first_attempt("shout", _files("shout", code=wrong), COMMAND)
    repo, code, result = build(script(broken))
    assert code == 0, result
    _branch_is_built(repo, result)
    task = next(t for t in result["tasks"] if t["id"] == "shout")
    assert task["attempts"] == 2, task
    first = task["history"][0]
    assert first["status"] == "failed" and first["class"] == "type_error", first
    assert first["pattern"] == "rust.type", first
    assert first["remediation"] == "retry_with_hint", first
