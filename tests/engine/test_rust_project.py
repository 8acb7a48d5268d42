"""`karma build` on a Rust project: real Docker, git and Debian's cargo and rustc.

The fixture is `examples/rust-greet`: a library crate with unit tests, no third-party
crate. The scripted model builds a two-task feature; each task passes the stack's
checks (`cargo build`, clippy, `cargo test`, all `--offline`) in a sandbox with no
network, and the branch's own suite (run again by itself in the stack image) passes its
three tests. A type error in a first attempt is the `type_error` that rustc's
`error[E0308]: mismatched types` is, and the next attempt (told the hint) heals it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest

from karma.config import KarmaConfig
from karma.home import builtin_dir
from karma.sandbox import spec_from_config
from karma.sandbox.docker import DockerBackend
from karma.testing.repos import git, init_repo
from tests.engine.conftest import ScriptedBuild
from tests.engine.feature_script import conversation, feature_script, first_attempt

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


def _suite(image: str, tree: Path) -> str:
    config = KarmaConfig(sandbox={"base_image": os.environ["KARMA_BASE_IMAGE"]})
    spec = spec_from_config(config, image=image, workspace=tree, run_id="rust-e2e", task_id="b")
    box = DockerBackend().start(spec)
    try:
        run = box.exec("cargo test --offline", timeout_s=600)
    finally:
        box.close()
    assert run.ok, run.output
    return run.output


def _branch_is_built(repo: Path, result: dict[str, Any]) -> None:
    assert result["status"] == "succeeded", result
    tasks = {t["id"]: t for t in result["tasks"]}
    assert set(tasks) == set(CASES)
    assert all(t["status"] == "succeeded" for t in tasks.values()), tasks
    assert all(t.get("stack") == "rust" for t in tasks.values()), tasks
    gates = {g["name"]: g for g in result["gates"]}
    assert gates["tests"]["status"] == "passed", gates["tests"]
    summary = gates["tests"]["summary"]
    assert summary.startswith("3 tests: 3 passed, 0 failed, 0 errors, 0 skipped (base collected 1)")
    assert "`cargo test --offline`" in summary, summary
    files = git(repo, "ls-tree", "-r", "--name-only", result["branch"]).split()
    assert {"src/shout.rs", "src/whisper.rs", "Cargo.lock"} <= set(files)
    assert not any(f.startswith("target/") for f in files), files  # cargo's, never committed
    tree = repo.parent / "branch"
    git(repo, "worktree", "add", "-q", str(tree), result["branch"])
    image = result["tasks"][0]["sandbox"]["image"]
    assert image.startswith("karma/stack-rust:"), image
    output = _suite(image, tree)
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
