"""npm, pnpm and yarn 1 workspaces: a monorepo's packages in one Node stack image, their
code the tree's.

The fixtures (`tests/sandbox/fixtures/node-workspaces`, `node-pnpm-workspaces`,
`node-yarn-workspaces`, their lockfiles made by npm, pnpm and yarn) are two workspaces,
`@mono/app` using `@mono/core`, which uses `ms` from the registry. Each image installs
`ms` and links each workspace's `/node_modules/<name>` to its folder in the sandbox's
mounted tree: the root's `node --test packages/` passes, and a change to `packages/core`
is what `@mono/app` runs.

The attacks: a workspace path out of the project, a link to a folder that is no
workspace, a package npm placed inside a workspace, a workspace's `package.json` reached
through a symlink or missing, a workspace name that is a path, the project's own
`pnpm-workspace.yaml` (never read: KARMA writes its own), yarn patterns that are globs
KARMA does not expand, and a symlinked or hidden folder a pattern would reach.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path, PurePosixPath

import pytest

from karma.config import KarmaConfig
from karma.executor.unit import run_checks
from karma.recipes import detect_stack
from karma.sandbox import spec_from_config
from karma.sandbox.docker import DockerBackend
from karma.sandbox.images import ensure_image, read_inputs
from karma.sandbox.interface import ImageBuildError
from karma.sandbox.jsworkspaces import links_file
from karma.sandbox.npm import check_lockfile, install_files, workspace_folders
from karma.sandbox.pnpmlock import workspace_file

FIXTURE = Path(__file__).parent / "fixtures" / "node-workspaces"
PNPM_FIXTURE = Path(__file__).parent / "fixtures" / "node-pnpm-workspaces"
YARN_FIXTURE = Path(__file__).parent / "fixtures" / "node-yarn-workspaces"
MANIFESTS = ("packages/app/package.json", "packages/core/package.json")


def _files(root: Path = FIXTURE, lockfile: str = "package-lock.json") -> dict[str, bytes]:
    names = ("package.json", lockfile, *MANIFESTS)
    return {name: (root / name).read_bytes() for name in names}


def _lock() -> dict[str, dict[str, object]]:
    return json.loads((FIXTURE / "package-lock.json").read_text())


@pytest.mark.parametrize(
    ("root", "lockfile"),
    [(FIXTURE, "package-lock.json"), (PNPM_FIXTURE, "pnpm-lock.yaml"),
     (YARN_FIXTURE, "yarn.lock")],
)  # fmt: skip
def test_the_workspaces_lockfiles_are_accepted_with_each_workspaces_manifest(
    root: Path, lockfile: str
) -> None:
    files = _files(root, lockfile)
    assert workspace_folders(files) == ("packages/app", "packages/core")
    assert check_lockfile(files) == 1  # ms; the links and the workspaces are not packages
    assert install_files(files) == ("package.json", lockfile, *MANIFESTS)
    assert links_file(workspace_folders(files), files) == (
        "@mono/app packages/app\n@mono/core packages/core\n"
    )


def test_karmas_pnpm_workspace_file_lists_the_folders_and_nothing_else() -> None:
    assert workspace_file(["packages/core", "packages/a b"]) == (
        'packages:\n  - "packages/a b"\n  - "packages/core"\n'
    )


def test_a_workspace_named_as_a_path_or_a_pnpm_link_out_of_the_workspaces_is_refused() -> None:
    files = _files()
    files["packages/core/package.json"] = b'{"name": "../../etc", "version": "1.0.0"}'
    with pytest.raises(ImageBuildError, match=r"packages/core/package\.json refused: name"):
        check_lockfile(files)
    pnpm = _files(PNPM_FIXTURE, "pnpm-lock.yaml")
    lock = pnpm["pnpm-lock.yaml"].decode()
    for target in ("link:../../../outside", "link:../../src", "file:../core"):
        pnpm["pnpm-lock.yaml"] = lock.replace("link:../core", target).encode()
        with pytest.raises(ImageBuildError, match="not a registry version or a workspace"):
            check_lockfile(pnpm)
    pnpm["pnpm-lock.yaml"] = lock.replace("packages/core:", "packages/../../core:").encode()
    with pytest.raises(ImageBuildError, match="is not a folder of the project"):
        check_lockfile(pnpm)


def test_read_inputs_reads_each_workspaces_manifest_and_hashes_the_folder(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(FIXTURE, repo / "web")
    inputs = read_inputs("node", repo, folder=PurePosixPath("web"))
    assert [name for name, _ in inputs.deps] == ["package-lock.json", "package.json", *MANIFESTS]
    assert inputs.folder == "web"  # the links point at /workspace/web/packages/...
    plain = read_inputs("node", repo / "web")
    assert plain.folder == "" and plain.deps == inputs.deps


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda p: p.update({"../outside": {"name": "x"}}), "is not a folder of the project"),
        (lambda p: p.update({"packages/.git": {"name": "x"}}), "is not a folder of the project"),
        (lambda p: p.update({"packages/a\nevil-name x": {"name": "x"}}),  # a second links line
         "is not a folder of the project"),
        (lambda p: p["node_modules/@mono/core"].update({"resolved": "../../etc"}),
         "a link to the local folder"),
        (lambda p: p.update({"node_modules/evil": {"resolved": "src", "link": True}}),
         "a link to the local folder"),
        (lambda p: p.update({"packages/core/node_modules/ms": p["node_modules/ms"]}),
         "a package installed inside a workspace"),
    ],
)  # fmt: skip
def test_a_workspace_lockfile_reaching_out_of_its_workspaces_is_refused(
    change: object, reason: str
) -> None:
    lock = _lock()
    change(lock["packages"])  # type: ignore[operator]
    files = {**_files(), "package-lock.json": json.dumps(lock).encode()}
    with pytest.raises(ImageBuildError, match=re.escape("refused")) as caught:
        check_lockfile(files)
    assert reason in str(caught.value), str(caught.value)


def test_a_workspace_manifest_through_a_symlink_or_missing_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "package.json").write_text('{"name": "@mono/core", "version": "1.0.0"}')
    linked = tmp_path / "linked"
    shutil.copytree(FIXTURE, linked)
    shutil.rmtree(linked / "packages" / "core")
    (linked / "packages" / "core").symlink_to(outside)
    with pytest.raises(ImageBuildError, match=r"packages/core/package\.json refused"):
        read_inputs("node", linked)
    missing = tmp_path / "missing"
    shutil.copytree(FIXTURE, missing)
    (missing / "packages" / "app" / "package.json").unlink()
    with pytest.raises(ImageBuildError, match=r"packages/app/package\.json refused"):
        read_inputs("node", missing)


@pytest.mark.docker
@pytest.mark.parametrize(
    "fixture", [FIXTURE, PNPM_FIXTURE, YARN_FIXTURE], ids=["npm", "pnpm", "yarn"]
)
def test_a_workspaces_monorepo_builds_and_its_workspaces_are_the_trees_code(
    docker_engine: str, tmp_path: Path, fixture: Path
) -> None:
    repo = tmp_path / "mono"
    shutil.copytree(fixture, repo)
    # The project's own pnpm-workspace.yaml is never read: this one would not even parse.
    (repo / "pnpm-workspace.yaml").write_text("packages: [\nregistry: http://127.0.0.1:9/\n")
    config = KarmaConfig(sandbox={"base_image": docker_engine})
    tag = ensure_image("node", repo, config)
    stack = detect_stack(repo)
    assert stack is not None and stack.name == "node"
    box = DockerBackend().start(
        spec_from_config(config, image=tag, workspace=repo, run_id="test-ws", task_id="t1")
    )
    try:
        links = box.exec("readlink /node_modules/@mono/core /node_modules/@mono/app", timeout_s=30)
        passing = run_checks(stack, repo, box, ["packages/app/index.js"], 120)
        core = repo / "packages" / "core" / "index.js"
        core.write_text(core.read_text().replace("/ 1000", "/ 60"))  # minutes, not seconds
        failing = run_checks(stack, repo, box, ["packages/core/index.js"], 120)
    finally:
        box.close()
    assert links.output.split() == ["/workspace/packages/core", "/workspace/packages/app"]
    assert passing and all(result.ok for _, result in passing), passing
    tests = next(result for step, result in failing if step == "test")
    assert not tests.ok and "says a timeout in seconds" in tests.output, tests.output


def test_yarn_patterns_expand_to_plain_folders_with_a_manifest_only(tmp_path: Path) -> None:
    repo = tmp_path / "yarn"
    shutil.copytree(YARN_FIXTURE, repo)
    outside = tmp_path / "outside"
    (outside / "evil").mkdir(parents=True)
    (outside / "evil" / "package.json").write_text('{"name": "evil", "version": "1.0.0"}')
    (repo / "packages" / "linked").symlink_to(outside / "evil")  # a folder through a link
    (repo / "packages" / ".hidden").mkdir()
    (repo / "packages" / ".hidden" / "package.json").write_text('{"name": "hidden"}')
    (repo / "packages" / "docs").mkdir()  # no package.json: not a workspace
    inputs = read_inputs("node", repo)
    assert [name for name, _ in inputs.deps] == ["package.json", "yarn.lock", *MANIFESTS]
    for pattern in ("packages/**", "{a,b}/*", "!packages/x", "../*", "packages/*/src"):
        manifest = json.loads((repo / "package.json").read_text()) | {"workspaces": [pattern]}
        (repo / "package.json").write_text(json.dumps(manifest))
        with pytest.raises(ImageBuildError, match="workspace pattern"):
            read_inputs("node", repo)
