"""The audit gate on a Node project: package-lock.json against an OSV endpoint.

The endpoint is `karma advisories serve` on a real GitHub advisory (GHSA-35jh-r3h4-6jhm,
lodash before 4.17.21, copied into examples/advisories-npm/); the lockfiles were made by
the real npm (tests/gates/npm/README.md). The lockfile is the repository's, untrusted:
the attacks are a symlinked one, a huge one, one that is not JSON or nests without end,
and entries whose keys or names are paths or URLs.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from karma.advisories import AdvisoryServer, semver, serving
from karma.config import KarmaConfig
from karma.gates import GateContext, load_suite, run_suite
from karma.gates.interface import GateResult, GateUnavailable
from karma.gates.npmaudit import MAX_LOCK_BYTES, lock_pins, pins_of
from karma.home import builtin_dir
from karma.recipes import detect_stack
from tests.gates.conftest import git, make_repo, write

NPM = Path(__file__).parent / "npm"
ADVISORY = "GHSA-35jh-r3h4-6jhm"


def _pair(version: str) -> dict[str, str]:
    return {
        "package.json": (NPM / f"lodash-{version}.package.json").read_text(),
        "package-lock.json": (NPM / f"lodash-{version}.package-lock.json").read_text(),
    }


@pytest.fixture(scope="module")
def npm_osv() -> Iterator[AdvisoryServer]:
    with serving(builtin_dir("examples") / "advisories-npm") as server:
        yield server


def _audit(repo: Path, osv_url: str | None) -> GateResult:
    config = KarmaConfig.model_validate({"gates": {"audit": {"osv_url": osv_url}}})
    stack = detect_stack(repo)
    assert stack is not None and stack.name == "node"
    ctx = GateContext(repo=repo, base=git(repo, "rev-parse", "HEAD"), config=config, stack=stack)
    result = run_suite(ctx, load_suite().only(("audit",))).result("audit")
    assert result is not None
    return result


def test_a_downgrade_to_a_vulnerable_lodash_fails(tmp_path: Path, npm_osv: AdvisoryServer) -> None:
    repo = make_repo(tmp_path / "r", _pair("4.17.21"))
    write(repo, _pair("4.17.20"))
    result = _audit(repo, npm_osv.url)
    assert result.status == "failed", result
    (finding,) = result.findings
    assert finding.rule == ADVISORY and finding.new and finding.severity == "error"
    assert (finding.path, finding.line) == ("package-lock.json", 14)
    assert "lodash 4.17.20 is vulnerable" in finding.message and "CVE-2021-23337" in finding.message
    assert "fixed in 4.17.21" in finding.message
    assert result.data == {"source": "package-lock.json", "packages": 1}


def test_what_the_base_had_warns_and_an_ignore_silences(
    tmp_path: Path, npm_osv: AdvisoryServer
) -> None:
    repo = make_repo(tmp_path / "r", _pair("4.17.20"))
    write(repo, {"package.json": _pair("4.17.20")["package.json"].replace('"1.0.0"', '"1.0.1"')})
    result = _audit(repo, npm_osv.url)
    assert result.status == "warning" and [f.new for f in result.findings] == [False], result
    # The fix passes.
    write(repo, _pair("4.17.21"))
    assert _audit(repo, npm_osv.url).status == "passed"


def test_no_endpoint_is_skipped_with_the_reason(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", _pair("4.17.21"))
    write(repo, _pair("4.17.20"))
    result = _audit(repo, None)
    assert result.status == "skipped" and "no OSV endpoint configured for npm" in result.summary


def test_semver_orders_as_npm_does() -> None:
    order = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-beta", "1.0.0-rc.1", "1.0.0", "1.0.1", "1.10.0"]
    keys = [semver(v) for v in order]
    assert keys == sorted(keys)  # type: ignore[type-var]
    assert semver("4.17.21") > semver("4.17.20")  # type: ignore[operator]
    assert semver("latest") is None and semver("../../etc") is None


# -- the lockfile is untrusted ----------------------------------------------------------


def test_lockfile_keys_and_names_that_are_paths_or_urls_are_not_packages() -> None:
    lock = {
        "lockfileVersion": 3,
        "packages": {
            "": {"name": "shop", "version": "1.0.0"},
            "node_modules/lodash": {"version": "4.17.20"},
            "node_modules/a/node_modules/@scope/b": {"version": "2.0.0"},
            "node_modules/../../etc/passwd": {"version": "1.0.0"},
            "node_modules/evil": {"version": "1.0.0", "name": "../../x"},
            "node_modules/url": {"version": "https://evil.example/x.tgz"},
            "node_modules/linked": {"link": True, "resolved": "../../outside"},
            "node_modules/Upper": {"version": "1.0.0"},
            "node_modules/ok": {"version": "1.0.0", "resolved": "file:///etc/shadow"},
            "node_modules/x": "not an object",
            "packages/core": {"name": "lodash", "version": "4.17.10"},  # a workspace: its own
        },
    }
    assert lock_pins(json.dumps(lock)) == [("lodash", "4.17.20"), ("@scope/b", "2.0.0"),
                                          ("ok", "1.0.0")]  # fmt: skip
    v1 = {"lockfileVersion": 1, "dependencies": {"a": {"version": "1.0.0", "dependencies": {
        "b": {"version": "2.0.0"}, "../c": {"version": "1.0.0"}}}}}  # fmt: skip
    assert lock_pins(json.dumps(v1)) == [("a", "1.0.0"), ("b", "2.0.0")]


@pytest.mark.parametrize("text", ["{not json", "[1]", "[" * 100_000 + "]" * 100_000])
def test_a_lockfile_that_is_not_a_json_object_is_an_error(text: str) -> None:
    with pytest.raises(GateUnavailable):
        lock_pins(text)


def test_a_symlinked_or_huge_lockfile_is_not_read(tmp_path: Path, npm_osv: AdvisoryServer) -> None:
    repo = make_repo(tmp_path / "r", _pair("4.17.21"))
    secret = tmp_path / "outside.json"
    secret.write_text((NPM / "lodash-4.17.20.package-lock.json").read_text())
    (repo / "package-lock.json").unlink()
    os.symlink(secret, repo / "package-lock.json")
    result = _audit(repo, npm_osv.url)
    assert result.status == "skipped" and "no package-lock.json" in result.summary, result
    (repo / "package-lock.json").unlink()
    with (repo / "package-lock.json").open("wb") as out:
        out.truncate(MAX_LOCK_BYTES + 1)
    result = _audit(repo, npm_osv.url)
    assert result.status == "skipped" and "at most" in result.summary, result


def test_in_a_mixed_repository_the_frontends_lockfile_is_audited_by_audit_web(
    tmp_path: Path, npm_osv: AdvisoryServer
) -> None:
    """`audit:web` reads `web/package-lock.json` (base and head); the root's Python audit
    leaves the frontend's files alone; a lockfile linked out of the folder is not read."""
    from karma.layout import commit_layout

    files = {f"web/{name}": text for name, text in _pair("4.17.21").items()}
    repo = make_repo(tmp_path / "r", {"pyproject.toml": "[project]\nname = 'a'\n", **files})
    write(repo, {f"web/{name}": text for name, text in _pair("4.17.20").items()})
    base = git(repo, "rev-parse", "HEAD")
    config = KarmaConfig.model_validate({"gates": {"audit": {"osv_url": npm_osv.url}}})
    layout = commit_layout(repo, base)
    ctx = GateContext(repo=repo, base=base, config=config, stack=layout.primary.stack,
                      layout=layout)  # fmt: skip
    suite = run_suite(ctx, load_suite().only(("audit",)))
    root, web = suite.result("audit"), suite.result("audit:web")
    assert root is not None and root.status == "passed", root  # no Python dependency changed
    assert web is not None and web.status == "failed", web
    (finding,) = web.findings
    assert finding.rule == ADVISORY and finding.path == "web/package-lock.json"
    assert web.data["folder"] == "web" and web.data["stack"] == "node"
    outside = tmp_path / "outside.json"
    outside.write_text(_pair("4.17.20")["package-lock.json"])
    (repo / "web" / "package-lock.json").unlink()
    os.symlink(outside, repo / "web" / "package-lock.json")
    linked = run_suite(ctx, load_suite().only(("audit",))).result("audit:web")
    assert linked is not None and linked.status == "skipped", linked


# -- yarn.lock and pnpm-lock.yaml (made by yarnpkg 1.22.19 and pnpm 10.34.9) ---------------


def _made_by(manager: str, version: str) -> dict[str, str]:
    lockfile = "yarn.lock" if manager == "yarn" else "pnpm-lock.yaml"
    return {
        "package.json": (NPM / f"lodash-{version}.{manager}.package.json").read_text(),
        lockfile: (NPM / f"lodash-{version}.{lockfile}").read_text(),
    }


@pytest.mark.parametrize(
    ("manager", "lockfile", "line"), [("yarn", "yarn.lock", 5), ("pnpm", "pnpm-lock.yaml", 17)]
)
def test_a_downgrade_in_a_yarn_or_pnpm_lockfile_fails_and_the_fix_passes(
    tmp_path: Path, npm_osv: AdvisoryServer, manager: str, lockfile: str, line: int
) -> None:
    repo = make_repo(tmp_path / "r", _made_by(manager, "4.17.21"))
    write(repo, _made_by(manager, "4.17.20"))
    result = _audit(repo, npm_osv.url)
    assert result.status == "failed", result
    (finding,) = result.findings
    assert finding.rule == ADVISORY and finding.new
    assert (finding.path, finding.line) == (lockfile, line)
    assert result.data == {"source": lockfile, "packages": 1}
    write(repo, _made_by(manager, "4.17.21"))
    assert _audit(repo, npm_osv.url).status == "passed"


def test_yarn_and_pnpm_entries_that_are_paths_or_urls_are_not_packages() -> None:
    yarn = (NPM / "lodash-4.17.20.yarn.lock").read_text()
    evil = '\n"../../etc@^1":\n  version "1.0.0"\n\nok@^1:\n  version "latest"\n'
    assert pins_of("yarn.lock", yarn + evil) == [("lodash", "4.17.20")]
    pnpm = (NPM / "lodash-4.17.20.pnpm-lock.yaml").read_text()
    pnpm = pnpm.replace("\nsnapshots:", "  ../../etc@1.0.0: {}\n  x@https://e.example/x.tgz: {}\n"
                        "\nsnapshots:")  # fmt: skip
    assert pins_of("pnpm-lock.yaml", pnpm) == [("lodash", "4.17.20")]
    for lockfile, text in (("yarn.lock", "# yarn lockfile v1\n x\n"), ("pnpm-lock.yaml", "a: [")):
        with pytest.raises(GateUnavailable, match=f"{re.escape(lockfile)} is unreadable"):
            pins_of(lockfile, text)
