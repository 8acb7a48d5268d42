"""Node stack images: the lockfile's rules on the host, and the attacks through a real build.

The project's `package.json`, `package-lock.json` and `.npmrc` are untrusted. The attacks
go through `ensure_image` on a real Docker engine: a `.npmrc` naming a loopback canary as
the registry (and turning scripts back on), a `preinstall` script that phones the canary
and leaves a marker, a lockfile resolved to another host. The canary must never be asked
and the marker never made; the refused lockfile fails before anything is built.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from karma.config import KarmaConfig
from karma.executor.unit import run_checks
from karma.heal.evidence import Evidence
from karma.heal.patterns import PatternTable
from karma.home import builtin_dir
from karma.recipes import detect_stack, load_failure_patterns
from karma.sandbox import spec_from_config
from karma.sandbox.docker import DockerBackend
from karma.sandbox.images import ensure_image
from karma.sandbox.interface import ImageBuildError
from karma.sandbox.npm import check_lockfile
from tests.sandbox.test_sandbox_images import Canary

FIXTURE = builtin_dir("examples") / "node-tally"


def _files(lock: dict[str, object] | None, manifest: dict[str, object]) -> dict[str, bytes]:
    files = {"package.json": json.dumps(manifest).encode()}
    if lock is not None:
        files["package-lock.json"] = json.dumps(lock).encode()
    return files


def _lock(**entries: dict[str, object]) -> dict[str, object]:
    packages: dict[str, object] = {"": {"name": "p", "version": "1.0.0"}}
    packages |= {f"node_modules/{name}": entry for name, entry in entries.items()}
    return {"name": "p", "lockfileVersion": 3, "requires": True, "packages": packages}


GOOD = json.loads((FIXTURE / "package-lock.json").read_text())["packages"][
    "node_modules/typescript"
]
"""An entry npm wrote (the fixture's lockfile)."""


def test_the_fixtures_lockfile_made_by_npm_is_accepted() -> None:
    files = {n: (FIXTURE / n).read_bytes() for n in ("package.json", "package-lock.json")}
    assert check_lockfile(files) == 1


@pytest.mark.parametrize(
    ("resolved", "reason"),
    [
        ("http://evil.example/typescript/-/typescript-5.9.3.tgz", "http://evil.example"),
        ("https://evil.example/typescript/-/typescript-5.9.3.tgz", "evil.example"),
        ("https://registry.npmjs.org.evil.example/t/-/t-1.tgz", "evil.example"),
        ("http://registry.npmjs.org/typescript/-/typescript-5.9.3.tgz", "http://registry"),
        ("git+ssh://git@github.com/evil/pkg.git#abc", "git+ssh"),
        ("file:../outside", "file:"),
        ("https://registry.npmjs.org/../../x.tgz", "registry.npmjs.org/../"),
    ],
)
def test_a_lockfile_resolved_anywhere_but_the_public_registry_is_refused(
    resolved: str, reason: str
) -> None:
    lock = _lock(typescript={**GOOD, "resolved": resolved})
    with pytest.raises(ImageBuildError) as caught:
        check_lockfile(_files(lock, {"devDependencies": {"typescript": "^5"}}))
    assert "package-lock.json refused: node_modules/typescript: resolved to" in str(caught.value)
    assert reason in str(caught.value)
    assert "registry.npmjs.org" in (caught.value.tip or "")


def test_links_paths_out_of_node_modules_and_unchecked_tarballs_are_refused() -> None:
    manifest = {"dependencies": {"x": "*"}}
    cases = {
        "a link to the local folder": _lock(x={"resolved": "../../etc", "link": True}),
        "no sha512 `integrity`": _lock(x={**GOOD, "integrity": None}),
        "no `resolved` URL": _lock(x={"version": "1.0.0"}),
    }
    escaping = _lock()
    escaping["packages"]["node_modules/../../evil"] = GOOD  # type: ignore[index]
    cases["outside node_modules/"] = escaping
    for reason, lock in cases.items():
        with pytest.raises(ImageBuildError, match=re.escape("package-lock.json refused")) as caught:
            check_lockfile(_files(lock, manifest))
        assert reason in str(caught.value), (reason, str(caught.value))


def test_dependencies_without_a_lockfile_are_refused_and_none_need_none() -> None:
    with pytest.raises(ImageBuildError, match=re.escape("there is no lockfile")) as caught:
        check_lockfile(_files(None, {"devDependencies": {"typescript": "^5"}}))
    assert "npm install --package-lock-only" in (caught.value.tip or "")
    assert check_lockfile(_files(None, {"name": "p", "scripts": {"test": "node --test"}})) == 0
    with pytest.raises(ImageBuildError, match=re.escape("package.json refused: not valid JSON")):
        check_lockfile({"package.json": b"{nope"})


def test_python_stays_first_when_a_repository_has_both(tmp_path: Path) -> None:
    (tmp_path / "package.json").write_text("{}")
    stack = detect_stack(tmp_path)
    assert stack is not None and stack.name == "node"
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    stack = detect_stack(tmp_path)
    assert stack is not None and stack.name == "python"


@pytest.mark.docker
def test_a_refused_lockfile_fails_the_image_build_before_anything_runs(
    docker_engine: str, tmp_path: Path
) -> None:
    repo = tmp_path / "evil-lock"
    shutil.copytree(FIXTURE, repo)
    lock = json.loads((repo / "package-lock.json").read_text())
    entry = lock["packages"]["node_modules/typescript"]
    entry["resolved"] = "http://evil.example/typescript/-/typescript-5.9.3.tgz"
    (repo / "package-lock.json").write_text(json.dumps(lock, indent=2))
    built: list[str] = []
    with pytest.raises(ImageBuildError, match=re.escape("resolved to 'http://evil.example/")):
        ensure_image("node", repo, KarmaConfig(sandbox={"base_image": docker_engine}),
                     log=built.append)  # fmt: skip
    assert built == []  # refused on the host: no toolchain, download or build step ran


@pytest.mark.docker
def test_the_projects_npmrc_and_install_scripts_are_never_used(
    docker_engine: str, tmp_path: Path
) -> None:
    """`.npmrc` points the registry at the canary and turns scripts on; `preinstall` phones
    the canary and makes a folder in node_modules. The image still installs typescript
    from the public registry, the canary is never asked, and the marker never exists."""
    served = tmp_path / "served"
    served.mkdir()
    canary = Canary(served)
    try:
        repo = tmp_path / "evil-scripts"
        shutil.copytree(FIXTURE, repo)
        (repo / ".npmrc").write_text(
            f"registry={canary.url}/npmrc-registry/\nignore-scripts=false\n"
            f"script-shell=/bin/sh\n//127.0.0.1/:_authToken=npmrc-token\n"
        )
        manifest = json.loads((repo / "package.json").read_text())
        phone = f"require('http').get('{canary.url}/preinstall-ran')"
        manifest["scripts"] |= {
            "preinstall": f'node -e "{phone}"; mkdir -p node_modules/karma-preinstall-ran',
            "postinstall": f'node -e "{phone}"',
            "prepare": "mkdir -p node_modules/karma-prepare-ran",
        }
        (repo / "package.json").write_text(json.dumps(manifest, indent=2))
        config = KarmaConfig(sandbox={"base_image": docker_engine})
        tag = ensure_image("node", repo, config)
        assert canary.asked == []  # neither the .npmrc registry nor a script reached it
        box = DockerBackend().start(
            spec_from_config(config, image=tag, workspace=repo, run_id="test-npm", task_id="t1")
        )
        try:
            result = box.exec("ls /node_modules", timeout_s=60)
        finally:
            box.close()
        assert result.ok, result.output
        assert result.output.split() == ["typescript"], result.output
    finally:
        canary.close()


@pytest.mark.docker
def test_a_project_without_dependencies_builds_and_a_tsconfig_without_typescript_says_so(
    docker_engine: str, tmp_path: Path
) -> None:
    """No lockfile and no dependencies: nothing is downloaded, the image still builds, and
    the image is reused on the next call. Its tsconfig.json without typescript fails the
    typecheck check as the missing tool it is, not as a type error."""
    repo = tmp_path / "bare"
    repo.mkdir()
    manifest = {"name": "bare", "version": "1.0.0", "scripts": {"test": "node --test"}}
    (repo / "package.json").write_text(json.dumps(manifest))
    (repo / "tsconfig.json").write_text('{"compilerOptions": {"strict": true}}')
    (repo / "index.ts").write_text("export const one: number = 1;\n")
    config = KarmaConfig(sandbox={"base_image": docker_engine})
    built: list[str] = []
    tag = ensure_image("node", repo, config, log=built.append)
    assert not any("stage 1: downloading" in line for line in built), built
    again: list[str] = []
    assert ensure_image("node", repo, config, log=again.append) == tag
    assert again == []  # a cache hit: nothing was built
    stack = detect_stack(repo)
    assert stack is not None and stack.name == "node"
    box = DockerBackend().start(
        spec_from_config(config, image=tag, workspace=repo, run_id="test-npm", task_id="t2")
    )
    try:
        ((step, outcome),) = run_checks(stack, repo, box, ["index.ts"], 120)
    finally:
        box.close()
    assert step == "typecheck" and outcome.exit_code == 127, outcome.output
    assert "typescript is not in package.json's devDependencies" in outcome.output
    table = PatternTable(load_failure_patterns())
    found = table.classify_patterns(Evidence.from_exec(outcome, step=step))
    assert found.failure_class == "missing_tool", found


ESLINT_FIXTURE = Path(__file__).parent / "fixtures" / "node-eslint"
UNUSED = (
    '"use strict";\nfunction f(a) {\n  const unused = 1;\n  return a;\n}\nmodule.exports = { f };\n'
)


@pytest.mark.docker
def test_eslint_runs_on_the_changed_files_when_configured_and_its_problems_are_lint_errors(
    docker_engine: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fixture's eslint 9 (from its npm-made lockfile) checks a task's changed files:
    its own file passes, an unused variable is the `lint_error` eslint reports. The
    configuration is the tree's, model-writable: it runs in the sandbox only, where the
    host's environment (its API key) is not."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-host-secret")
    repo = tmp_path / "lint"
    shutil.copytree(ESLINT_FIXTURE, repo)
    config = KarmaConfig(sandbox={"base_image": docker_engine})
    tag = ensure_image("node", repo, config)
    stack = detect_stack(repo)
    assert stack is not None and stack.name == "node"
    planted = "require('fs').writeFileSync('seen.txt', JSON.stringify(process.env));\n"
    (repo / "eslint.config.js").write_text(planted + (repo / "eslint.config.js").read_text())
    (repo / "src" / "bad.js").write_text(UNUSED)
    box = DockerBackend().start(
        spec_from_config(config, image=tag, workspace=repo, run_id="test-npm", task_id="t3")
    )
    try:
        clean = run_checks(stack, repo, box, ["src/count.js"], 120)
        dirty = run_checks(stack, repo, box, ["src/bad.js"], 120)
    finally:
        box.close()
    assert [step for step, _ in clean] == ["typecheck", "lint", "test"], clean
    assert all(outcome.ok for _, outcome in clean), clean
    step, outcome = dirty[-1]
    assert step == "lint" and outcome.exit_code == 1, outcome.output
    assert "'unused' is assigned a value but never used" in outcome.output, outcome.output
    found = PatternTable(load_failure_patterns()).classify_patterns(
        Evidence.from_exec(outcome, step=step)
    )
    assert (found.failure_class, found.pattern_id) == ("lint_error", "js.eslint"), found
    seen = (repo / "seen.txt").read_text()
    assert "sk-host-secret" not in seen and "ANTHROPIC_API_KEY" not in seen
