"""The audit gate on a Go and a Rust project: go.sum / Cargo.lock against an OSV endpoint.

The endpoint is `karma advisories serve` on two real GitHub advisories
(GHSA-69ch-w2m2-3vjp, golang.org/x/text before 0.3.8; GHSA-m5pq-gvj9-9vr8, the regex
crate before 1.5.5; examples/advisories-go-rust/); the go.sum and Cargo.lock files are
golang.org/x/net's and ripgrep's own, at the commits before and after each fix
(tests/gates/osv/README.md). The lockfile is the repository's, untrusted: the attacks
are a symlinked one, a huge one, one that is not TOML, and entries whose names are paths
or whose source is git or a path.
"""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from karma.advisories import AdvisoryServer, serving
from karma.config import KarmaConfig
from karma.gates import GateContext, load_suite, run_suite
from karma.gates.interface import GateResult, GateUnavailable
from karma.gates.lockaudit import cargo_pins, go_pins
from karma.gates.osv import MAX_LOCK_BYTES
from karma.home import builtin_dir
from karma.recipes import detect_stack
from tests.gates.conftest import git, make_repo, write

FIXTURES = Path(__file__).parent / "osv"
GO_ADVISORY, RUST_ADVISORY = "GHSA-69ch-w2m2-3vjp", "GHSA-m5pq-gvj9-9vr8"
GO_VULNERABLE, GO_FIXED = "cb67ada", "1568cf9"  # golang.org/x/net: x/text 0.3.7, 0.4.0
RUST_VULNERABLE, RUST_FIXED = "5370064", "191315a"  # ripgrep: regex 1.5.4, 1.5.5


def _go(commit: str) -> dict[str, str]:
    return {
        name: (FIXTURES / f"x-net-{commit}.{name}").read_text() for name in ("go.mod", "go.sum")
    }


def _rust(commit: str) -> dict[str, str]:
    return {"Cargo.toml": (FIXTURES / "ripgrep.Cargo.toml").read_text(),
            "Cargo.lock": (FIXTURES / f"ripgrep-{commit}.Cargo.lock").read_text()}  # fmt: skip


@pytest.fixture(scope="module")
def go_rust_osv() -> Iterator[AdvisoryServer]:
    with serving(builtin_dir("examples") / "advisories-go-rust") as server:
        yield server


def _audit(repo: Path, osv_url: str | None, stack_name: str) -> GateResult:
    config = KarmaConfig.model_validate({"gates": {"audit": {"osv_url": osv_url}}})
    stack = detect_stack(repo)
    assert stack is not None and stack.name == stack_name
    ctx = GateContext(repo=repo, base=git(repo, "rev-parse", "HEAD"), config=config, stack=stack)
    result = run_suite(ctx, load_suite().only(("audit",))).result("audit")
    assert result is not None
    return result


def test_a_go_sum_moved_to_a_vulnerable_x_text_fails_and_the_fix_passes(
    tmp_path: Path, go_rust_osv: AdvisoryServer
) -> None:
    repo = make_repo(tmp_path / "r", _go(GO_FIXED))
    write(repo, _go(GO_VULNERABLE))
    result = _audit(repo, go_rust_osv.url, "go")
    assert result.status == "failed", result
    (finding,) = result.findings
    assert finding.rule == GO_ADVISORY and finding.new and finding.severity == "error"
    assert (finding.path, finding.line) == ("go.sum", 6)
    assert "golang.org/x/text 0.3.7 is vulnerable" in finding.message
    assert "CVE-2022-32149" in finding.message and "fixed in 0.3.8" in finding.message
    assert result.data == {"source": "go.sum", "packages": 3}
    # The fix: x/text 0.4.0; its go.sum still lists v0.3.7/go.mod, which is not built.
    repo = make_repo(tmp_path / "fixed", _go(GO_VULNERABLE))
    write(repo, _go(GO_FIXED))
    fixed = _audit(repo, go_rust_osv.url, "go")
    assert fixed.status == "passed" and fixed.findings == (), fixed
    assert fixed.data == {"source": "go.sum", "packages": 3}


def test_a_cargo_lock_moved_to_a_vulnerable_regex_fails_and_the_fix_passes(
    tmp_path: Path, go_rust_osv: AdvisoryServer
) -> None:
    repo = make_repo(tmp_path / "r", _rust(RUST_FIXED))
    write(repo, _rust(RUST_VULNERABLE))
    result = _audit(repo, go_rust_osv.url, "rust")
    assert result.status == "failed", result
    (finding,) = result.findings
    assert finding.rule == RUST_ADVISORY and finding.new and finding.severity == "error"
    assert (finding.path, finding.line) == ("Cargo.lock", 424)
    assert "regex 1.5.4 is vulnerable" in finding.message and "fixed in 1.5.5" in finding.message
    assert result.data == {"source": "Cargo.lock", "packages": 56}
    repo = make_repo(tmp_path / "fixed", _rust(RUST_VULNERABLE))
    write(repo, _rust(RUST_FIXED))
    fixed = _audit(repo, go_rust_osv.url, "rust")
    assert fixed.status == "passed" and fixed.data == {"source": "Cargo.lock", "packages": 55}


def test_what_the_base_had_warns(tmp_path: Path, go_rust_osv: AdvisoryServer) -> None:
    repo = make_repo(tmp_path / "r", _go(GO_VULNERABLE))
    write(repo, {"go.sum": _go(GO_VULNERABLE)["go.sum"] + "\n"})
    result = _audit(repo, go_rust_osv.url, "go")
    assert result.status == "warning" and [f.new for f in result.findings] == [False], result


@pytest.mark.parametrize(("files", "stack", "ecosystem"), [
    (_go(GO_VULNERABLE), "go", "Go"), (_rust(RUST_VULNERABLE), "rust", "crates.io")])  # fmt: skip
def test_no_endpoint_is_skipped_with_the_reason(
    tmp_path: Path, files: dict[str, str], stack: str, ecosystem: str
) -> None:
    repo = make_repo(tmp_path / "r", {name: "" if name.endswith(("sum", "lock")) else text
                                      for name, text in files.items()})  # fmt: skip
    write(repo, files)
    result = _audit(repo, None, stack)
    assert result.status == "skipped", result
    assert f"no OSV endpoint configured for {ecosystem}" in result.summary


def test_a_change_to_no_dependency_file_makes_no_query(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", _go(GO_VULNERABLE))
    write(repo, {"main.go": "package main\n"})
    result = _audit(repo, "http://127.0.0.1:9/v1/query", "go")  # nothing listens there
    assert result.status == "passed" and result.data["source"] == "diff", result


# -- the lockfile is untrusted ----------------------------------------------------------


@pytest.mark.parametrize("lockfile", ["go.sum", "Cargo.lock"])
def test_a_symlinked_or_huge_lockfile_is_not_read(
    tmp_path: Path, go_rust_osv: AdvisoryServer, lockfile: str
) -> None:
    go = lockfile == "go.sum"
    stack = "go" if go else "rust"
    fixed = _go(GO_FIXED) if go else _rust(RUST_FIXED)
    vulnerable = _go(GO_VULNERABLE) if go else _rust(RUST_VULNERABLE)
    repo = make_repo(tmp_path / "r", fixed)
    secret = tmp_path / "outside"
    secret.write_text(vulnerable[lockfile])
    (repo / lockfile).unlink()
    os.symlink(secret, repo / lockfile)
    result = _audit(repo, go_rust_osv.url, stack)
    assert result.status == "skipped" and f"no {lockfile}" in result.summary, result
    (repo / lockfile).unlink()
    with (repo / lockfile).open("wb") as out:
        out.truncate(MAX_LOCK_BYTES + 1)
    result = _audit(repo, go_rust_osv.url, stack)
    assert result.status == "skipped" and "at most" in result.summary, result


def test_cargo_git_and_path_packages_are_not_queried(
    tmp_path: Path, go_rust_osv: AdvisoryServer
) -> None:
    """ripgrep's workspace crates have no `source`; regex moved to a git source is not a
    crates.io version, so the advisory's range does not apply and nothing is asked."""
    lock = _rust(RUST_VULNERABLE)["Cargo.lock"]
    pins = cargo_pins(lock)
    assert ("regex", "1.5.4") in pins and not any(name.startswith("grep") for name, _ in pins)
    registry = 'version = "1.5.4"\nsource = "registry+https://github.com/rust-lang/crates.io-index"'
    assert lock.count(registry) == 1
    git_source = "git+https://github.com/rust-lang/regex#ae70b41d4f46641dbc45c7a4f87954aea356283e"
    git_regex = lock.replace(registry, f'version = "1.5.4"\nsource = "{git_source}"')
    assert ("regex", "1.5.4") not in cargo_pins(git_regex)
    repo = make_repo(tmp_path / "r", _rust(RUST_FIXED))
    write(repo, {"Cargo.lock": git_regex})
    result = _audit(repo, go_rust_osv.url, "rust")
    assert result.status == "passed" and result.data["packages"] == 55, result


def test_lockfile_names_that_are_paths_or_urls_are_not_pins() -> None:
    go_sum = (
        "golang.org/x/text v0.3.7 h1:olpwvP2KacW1ZWvsR7uQhoyTYvKAupfQrRGBFM352Gk=\n"
        "../../etc/passwd v1.0.0 h1:x=\n"
        "golang.org/../x v1.0.0 h1:x=\n"
        "https://evil.example/x v1.0.0 h1:x=\n"
        "example.com/m latest h1:x=\n"
        "example.com/m 1.0.0 h1:x=\n"
        "example.com/only v1.0.0/go.mod h1:x=\n"
        "not enough\n"
    )
    assert go_pins(go_sum) == [("golang.org/x/text", "0.3.7")]
    cargo = """version = 3

[[package]]
name = "../../etc"
version = "1.0.0"
source = "registry+https://github.com/rust-lang/crates.io-index"

[[package]]
name = "ok"
version = "v1.0.0"
source = "registry+https://github.com/rust-lang/crates.io-index"

[[package]]
name = "elsewhere"
version = "1.0.0"
source = "registry+https://evil.example/index"

[[package]]
name = "fine"
version = "0.1.0"
source = "registry+https://github.com/rust-lang/crates.io-index"
"""
    assert cargo_pins(cargo) == [("fine", "0.1.0")]
    assert cargo_pins("package = 1") == []
    for text in ("[[package]\nname = ", "x = " + "[" * 100_000):
        with pytest.raises(GateUnavailable, match=r"Cargo\.lock is not valid TOML"):
            cargo_pins(text)


# -- karma advisories serve answers Go and crates.io --------------------------------------


def _post(server: AdvisoryServer, path: str, body: object) -> dict[str, object]:
    request = urllib.request.Request(f"{server.base_url}{path}", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})  # fmt: skip
    with urllib.request.urlopen(request, timeout=10) as reply:
        answer: dict[str, object] = json.loads(reply.read())
    return answer


@pytest.mark.parametrize(("ecosystem", "name", "vulnerable", "fixed", "advisory"), [
    ("Go", "golang.org/x/text", ["0.3.7", "v0.3.7", "0.0.0-20170915032832-14c0d48ead0c"],
     ["0.3.8", "v0.4.0"], GO_ADVISORY),
    ("crates.io", "regex", ["1.5.4", "0.1.80"], ["1.5.5", "1.10.0"], RUST_ADVISORY),
])  # fmt: skip
def test_the_advisories_server_answers_go_and_crates_io(
    go_rust_osv: AdvisoryServer, ecosystem: str, name: str, vulnerable: list[str],
    fixed: list[str], advisory: str,
) -> None:  # fmt: skip
    for version in vulnerable:
        body = {"package": {"ecosystem": ecosystem, "name": name}, "version": version}
        vulns = _post(go_rust_osv, "/v1/query", body).get("vulns")
        assert isinstance(vulns, list) and [v["id"] for v in vulns] == [advisory], (version, vulns)
    queries = [{"package": {"ecosystem": ecosystem, "name": name}, "version": v} for v in fixed]
    queries.append({"package": {"ecosystem": "npm", "name": name}, "version": vulnerable[0]})
    queries.append({"package": {"ecosystem": ecosystem, "name": name.upper()},
                    "version": vulnerable[0]})  # fmt: skip
    assert _post(go_rust_osv, "/v1/querybatch", {"queries": queries}) == {
        "results": [{}] * len(queries)
    }


def test_an_ignore_by_its_cve_silences_the_go_advisory(
    tmp_path: Path, go_rust_osv: AdvisoryServer
) -> None:
    repo = make_repo(tmp_path / "r", _go(GO_FIXED))
    write(repo, _go(GO_VULNERABLE))
    ignore = [{"id": "CVE-2022-32149", "reason": "no Accept-Language parsing"}]
    config = KarmaConfig.model_validate({"gates": {"audit": {"osv_url": go_rust_osv.url}}})
    stack = detect_stack(repo)
    ctx = GateContext(repo=repo, base=git(repo, "rev-parse", "HEAD"), config=config, stack=stack)
    suite = load_suite(overrides={"audit": {"ignore": ignore}}).only(("audit",))
    result = run_suite(ctx, suite).result("audit")
    assert result is not None and result.status == "passed", result
    assert "1 ignored" in result.summary


def test_in_a_mixed_repository_the_go_services_go_sum_is_audited(
    tmp_path: Path, go_rust_osv: AdvisoryServer
) -> None:
    """`audit:svc` reads `svc/go.sum` (base and head); a go.sum linked out of the folder is
    not read."""
    from karma.layout import commit_layout

    files = {f"svc/{name}": text for name, text in _go(GO_FIXED).items()}
    repo = make_repo(tmp_path / "r", {"pyproject.toml": "[project]\nname = 'a'\n", **files})
    write(repo, {f"svc/{name}": text for name, text in _go(GO_VULNERABLE).items()})
    base = git(repo, "rev-parse", "HEAD")
    config = KarmaConfig.model_validate({"gates": {"audit": {"osv_url": go_rust_osv.url}}})
    layout = commit_layout(repo, base)
    ctx = GateContext(repo=repo, base=base, config=config, stack=layout.primary.stack,
                      layout=layout)  # fmt: skip
    suite = run_suite(ctx, load_suite().only(("audit",)))
    svc = suite.result("audit:svc")
    assert svc is not None and svc.status == "failed", suite
    (finding,) = svc.findings
    assert (finding.rule, finding.path, finding.line) == (GO_ADVISORY, "svc/go.sum", 6)
    outside = tmp_path / "outside.sum"
    outside.write_text(_go(GO_VULNERABLE)["go.sum"])
    (repo / "svc" / "go.sum").unlink()
    os.symlink(outside, repo / "svc" / "go.sum")
    linked = run_suite(ctx, load_suite().only(("audit",))).result("audit:svc")
    assert linked is not None and linked.status == "skipped", linked
