"""Go and Rust stack images and checks: real Docker, Debian's go and cargo, no network.

What a project needs from a registry comes vendored in its tree or not at all: a
vendored Go module or Cargo crate builds; one that is not fails the first check at once,
saying why (never a wait on a network the sandbox does not have), whatever the tree's
own configuration (a `.cargo/config.toml` pointing at a registry) says. The host never
reads go.mod, go.sum, Cargo.toml, Cargo.lock or .cargo/config.toml: links to host files
and folders in their place change nothing in the image or its tag.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from karma.config import KarmaConfig
from karma.executor.unit import run_checks
from karma.recipes import Stack, detect_stack
from karma.sandbox import spec_from_config
from karma.sandbox.docker import DockerBackend
from karma.sandbox.images import ensure_image, read_inputs
from karma.sandbox.interface import Sandbox

pytestmark = pytest.mark.docker

FAST_S = 30
"""A refusal comes at once: well under any check timeout."""
UUID_SUM = (
    "github.com/google/uuid v1.6.0 h1:NIvaJDMOsjHA8n1jAhLSgzrAzy1Hgr+hNrb57e+94F0=\n"
    "github.com/google/uuid v1.6.0/go.mod h1:TIyPZe4MgqvfeYDBFedMoGGpEw/LqOeaOT+nhxU+yHo=\n"
)
"""go.sum's two lines for a module (as `go get` writes them; never checked: nothing is fetched)."""


def write(root: Path, files: dict[str, str]) -> Path:
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    return root


@pytest.fixture
def boxes(docker_engine: str) -> Iterator[list[Sandbox]]:
    """The sandboxes `open_box` starts, closed at the end."""
    started: list[Sandbox] = []
    yield started
    for box in started:
        box.close()


def open_box(repo: Path, boxes: list[Sandbox]) -> tuple[Stack, Sandbox]:
    config = KarmaConfig(
        sandbox={"base_image": os.environ.get("KARMA_BASE_IMAGE", "karma/base:bookworm")}
    )
    stack = detect_stack(repo)
    assert stack is not None
    image = ensure_image(stack.name, repo, config)
    spec = spec_from_config(config, image=image, workspace=repo, run_id="gorust", task_id="t")
    box = DockerBackend().start(spec)
    boxes.append(box)
    return stack, box


def checks(
    stack: Stack, repo: Path, box: Sandbox, changed: list[str]
) -> list[tuple[str, bool, str]]:
    return [(step, r.ok, r.output) for step, r in run_checks(stack, repo, box, changed, 300)]


GO_UUID = {
    "go.mod": "module example.com/app\n\ngo 1.19\n\nrequire github.com/google/uuid v1.6.0\n",
    "go.sum": UUID_SUM,
    "app.go": 'package app\n\nimport "github.com/google/uuid"\n\n'
    "func ID() string { return uuid.NewString() }\n",
}


def test_go_modules_the_tree_does_not_vendor_fail_at_once_with_the_reason(
    tmp_path: Path, boxes: list[Sandbox]
) -> None:
    root = tmp_path / "project"
    repo = write(root, GO_UUID)
    stack, box = open_box(repo, boxes)
    assert stack.name == "go"
    started = time.monotonic()
    done = checks(stack, repo, box, ["app.go"])
    assert [(step, ok) for step, ok, _ in done] == [("install", False)]
    assert "go.sum lists 1 modules but there is no vendor/modules.txt" in done[0][2]
    assert "go mod vendor" in done[0][2]
    # The tests gate runs go test alone: go refuses too, naming the proxy setting.
    run = box.exec(stack.test_command, timeout_s=300)
    assert not run.ok and "GOPROXY=off" in run.output, run.output
    assert time.monotonic() - started < FAST_S


def test_a_vendored_go_module_builds_without_its_source(
    tmp_path: Path, boxes: list[Sandbox]
) -> None:
    """`go mod vendor` (the real one, in the sandbox) copies a module into vendor/; with
    the module's own folder gone, the checks pass from vendor/ alone."""
    root = tmp_path / "project"
    repo = write(root, {
        "go.mod": "module example.com/app\n\ngo 1.19\n\nrequire example.com/dep v1.0.0\n\n"
                  "replace example.com/dep => ./third_party/dep\n",
        "third_party/dep/go.mod": "module example.com/dep\n\ngo 1.19\n",
        "third_party/dep/dep.go": "package dep\n\nfunc One() int { return 1 }\n",
        "app.go": 'package app\n\nimport "example.com/dep"\n\n'
                  "func Two() int { return dep.One() + 1 }\n",
        "app_test.go": 'package app\n\nimport "testing"\n\nfunc TestTwo(t *testing.T) {\n'
                       "\tif Two() != 2 {\n\t\tt.Fatal(Two())\n\t}\n}\n",
    })  # fmt: skip
    stack, box = open_box(repo, boxes)
    vendored = box.exec("go mod vendor && rm -rf third_party", timeout_s=300)
    assert vendored.ok, vendored.output
    assert (repo / "vendor" / "modules.txt").is_file()
    done = checks(stack, repo, box, ["app.go", "app_test.go"])
    assert [(step, ok) for step, ok, _ in done] == [
        ("install", True), ("build", True), ("lint", True), ("test", True)
    ], done  # fmt: skip
    assert "ok  \texample.com/app" in done[-1][2]


RUST_APP = {
    "Cargo.toml": '[package]\nname = "app"\nversion = "0.1.0"\nedition = "2021"\n\n'
    '[dependencies]\ntiny = "0.1"\n',
    "src/lib.rs": "pub fn two() -> u32 {\n    tiny::one() + 1\n}\n\n"
    "#[test]\nfn two_is_two() {\n    assert_eq!(two(), 2);\n}\n",
}


def test_a_crate_the_tree_does_not_vendor_fails_at_once_whatever_cargo_config_says(
    tmp_path: Path, boxes: list[Sandbox]
) -> None:
    """The tree's .cargo/config.toml turns the network on, with long timeouts and
    retries, against a registry that would never answer: cargo still runs offline."""
    root = tmp_path / "project"
    repo = write(root, RUST_APP | {
        ".cargo/config.toml": '[net]\noffline = false\nretry = 100\n\n[http]\ntimeout = 600\n\n'
                              '[source.crates-io]\nreplace-with = "slow"\n\n'
                              '[source.slow]\nregistry = "https://10.255.255.1/index"\n',
    })  # fmt: skip
    stack, box = open_box(repo, boxes)
    assert stack.name == "rust"
    started = time.monotonic()
    done = checks(stack, repo, box, ["src/lib.rs"])
    assert [(step, ok) for step, ok, _ in done] == [("build", False)], done
    assert "offline" in done[0][2], done[0][2]
    assert time.monotonic() - started < FAST_S


def test_a_vendored_crate_builds(tmp_path: Path, boxes: list[Sandbox]) -> None:
    """A directory source (what `cargo vendor` writes, and the [source] replacement it
    prints) holds the crate: the checks pass with no registry."""
    root = tmp_path / "project"
    checksum = hashlib.sha256(b"tiny 0.1.0").hexdigest()
    repo = write(root, RUST_APP | {
        "vendor/tiny/Cargo.toml": '[package]\nname = "tiny"\nversion = "0.1.0"\nedition = "2021"\n',
        "vendor/tiny/src/lib.rs": "pub fn one() -> u32 {\n    1\n}\n",
        "vendor/tiny/.cargo-checksum.json": f'{{"files":{{}},"package":"{checksum}"}}',
        ".cargo/config.toml": '[source.crates-io]\nreplace-with = "vendored-sources"\n\n'
                              '[source.vendored-sources]\ndirectory = "vendor"\n',
    })  # fmt: skip
    stack, box = open_box(repo, boxes)
    done = checks(stack, repo, box, ["src/lib.rs"])
    assert [(step, ok) for step, ok, _ in done] == [
        ("build", True), ("lint", True), ("test", True)
    ], done  # fmt: skip
    assert "test result: ok. 1 passed" in done[-1][2]


def test_a_current_go_module_with_cgo_builds_and_a_newer_toolchain_is_named(
    tmp_path: Path, boxes: list[Sandbox]
) -> None:
    """A go.mod of today (`go 1.22.3`, a `toolchain` line) with a cgo package passes the
    checks on the toolchain's Go 1.23; one asking for a newer Go than the image has fails
    at once saying which (GOTOOLCHAIN=local: no download is tried)."""
    repo = write(tmp_path / "cgo", {
        "go.mod": "module example.com/cgo\n\ngo 1.22.3\n\ntoolchain go1.23.0\n",
        "add.go": 'package add\n\n// int add(int a, int b) { return a + b; }\nimport "C"\n\n'
                  "func Add(a, b int) int {\n\treturn int(C.add(C.int(a), C.int(b)))\n}\n",
        "add_test.go": 'package add\n\nimport "testing"\n\nfunc TestAdd(t *testing.T) {\n'
                       '\tif Add(2, 3) != 5 {\n\t\tt.Fatal("2 + 3")\n\t}\n}\n',
    })  # fmt: skip
    stack, box = open_box(repo, boxes)
    done = checks(stack, repo, box, ["add.go"])
    assert [(step, ok) for step, ok, _ in done] == [
        ("install", True), ("build", True), ("lint", True), ("test", True)
    ], done  # fmt: skip
    version = box.exec("go version", timeout_s=30).output
    assert "go1.23" in version, version
    (repo / "go.mod").write_text("module example.com/cgo\n\ngo 1.99.0\n")
    started = time.monotonic()
    newer = checks(stack, repo, box, ["add.go"])
    assert [(step, ok) for step, ok, _ in newer][-1] == ("build", False), newer
    assert "go.mod requires go >= 1.99.0" in newer[-1][2], newer[-1][2]
    assert time.monotonic() - started < FAST_S


def test_a_rust_2024_crate_with_a_version_4_lockfile_builds(
    tmp_path: Path, boxes: list[Sandbox]
) -> None:
    """Edition 2024 and `Cargo.lock` version 4 (what cargo writes today) need Rust 1.85:
    the toolchain's rustc-web."""
    repo = write(tmp_path / "r2024", {
        "Cargo.toml": '[package]\nname = "r2024"\nversion = "0.1.0"\nedition = "2024"\n',
        "Cargo.lock": "# This file is automatically @generated by Cargo.\n"
                      "# It is not intended for manual editing.\nversion = 4\n\n"
                      '[[package]]\nname = "r2024"\nversion = "0.1.0"\n',
        "src/lib.rs": "pub fn twice(x: u32) -> u32 {\n    x * 2\n}\n\n#[cfg(test)]\nmod tests {\n"
                      "    #[test]\n    fn doubles() {\n        assert_eq!(super::twice(2), 4);\n"
                      "    }\n}\n",
    })  # fmt: skip
    stack, box = open_box(repo, boxes)
    done = checks(stack, repo, box, ["src/lib.rs"])
    assert [(step, ok) for step, ok, _ in done] == [
        ("build", True), ("lint", True), ("test", True)
    ], done  # fmt: skip
    assert "rustc 1.85" in box.exec("rustc --version", timeout_s=30).output


@pytest.mark.parametrize(
    ("stack_name", "marker", "others"),
    [
        ("go", "go.mod", ["go.sum", "go.work"]),
        ("rust", "Cargo.toml", ["Cargo.lock", "rust-toolchain.toml", ".cargo/config.toml"]),
    ],
)
def test_the_host_never_reads_the_trees_go_or_cargo_files(
    docker_engine: str, tmp_path: Path, stack_name: str, marker: str, others: list[str]
) -> None:
    """Links to a host secret and to the host's root in place of every file go or cargo
    reads: the stack is found by name alone, and the image and its tag are the ones of a
    project without any of them (nothing of the tree is hashed, copied or followed)."""
    config = KarmaConfig(sandbox={"base_image": docker_engine})
    clean = write(tmp_path / "clean", {marker: "", "README.md": "clean\n"})
    hostile = tmp_path / "hostile"
    hostile.mkdir()
    (hostile / marker).symlink_to("/etc/shadow")
    for index, name in enumerate(others):
        (hostile / name).parent.mkdir(parents=True, exist_ok=True)
        (hostile / name).symlink_to("/" if index % 2 else "/etc/shadow")
    stack = detect_stack(hostile)
    assert stack is not None and stack.name == stack_name
    assert read_inputs(stack_name, hostile).deps == ()
    assert ensure_image(stack_name, hostile, config) == ensure_image(stack_name, clean, config)
