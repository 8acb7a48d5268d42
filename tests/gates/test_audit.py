"""The audit gate (real pip-audit against the loopback OSV endpoint) and the endpoint."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

from karma.advisories import AdvisoryServer, affects
from karma.config import KarmaConfig
from karma.gates import GateContext, load_suite, run_suite
from tests.gates.conftest import ADVISORIES, git, make_repo, write


def post(url: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(request, timeout=10) as reply:
        return json.load(reply)


def test_query_and_querybatch(osv: AdvisoryServer) -> None:
    ids = {
        v["id"]
        for v in post(
            osv.url, {"package": {"name": "Requests", "ecosystem": "PyPI"}, "version": "2.19.0"}
        )["vulns"]
    }
    assert {"PYSEC-2018-28", "PYSEC-2023-74"} <= ids
    assert (
        post(osv.url, {"package": {"name": "requests", "ecosystem": "PyPI"}, "version": "2.32.3"})
        == {}
    )
    batch = post(
        osv.base_url + "/v1/querybatch",
        {
            "queries": [
                {"package": {"name": "pyyaml", "ecosystem": "PyPI"}, "version": "5.3"},
                {"package": {"name": "no-such-package", "ecosystem": "PyPI"}, "version": "1.0"},
            ]
        },
    )
    assert batch["results"][0]["vulns"] and batch["results"][1] == {}


def test_range_matching() -> None:
    affected = {
        "ranges": [
            {
                "type": "ECOSYSTEM",
                "events": [
                    {"introduced": "1.0"},
                    {"fixed": "1.5"},
                    {"introduced": "2.0"},
                    {"last_affected": "2.1"},
                ],
            }
        ]
    }
    assert [
        affects(affected, v) for v in ("0.9", "1.0", "1.4.9", "1.5", "2.0", "2.1", "2.1.1")
    ] == [False, True, True, False, True, True, False]
    assert affects({"versions": ["0.1"]}, "0.1") and not affects({"versions": ["0.1"]}, "0.2")


def test_cli_serve_prints_its_url(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "karma", "advisories", "serve", str(ADVISORIES)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:") and url.endswith("/v1/query")
        assert post(url, {"package": {"name": "jinja2", "ecosystem": "PyPI"}, "version": "2.10"})[
            "vulns"
        ]
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _ctx(tmp_path: Path, osv: AdvisoryServer, base_pins: str, head_pins: str) -> GateContext:
    repo = make_repo(tmp_path / "r", {"requirements.txt": base_pins})
    write(repo, {"requirements.txt": head_pins})
    config = KarmaConfig.model_validate({"gates": {"audit": {"osv_url": osv.url}}})
    return GateContext(repo=repo, base=git(repo, "rev-parse", "HEAD"), config=config)


def test_only_new_vulnerabilities_block(tmp_path: Path, osv: AdvisoryServer) -> None:
    ctx = _ctx(tmp_path, osv, "urllib3==1.24.1\n", "urllib3==1.24.1\nrequests==2.19.0\n")
    gate = run_suite(ctx, load_suite().only(("audit",))).result("audit")
    assert gate is not None and gate.status == "failed"
    new = {f.rule for f in gate.findings if f.new}
    old = {f.path + ":" + str(f.line) for f in gate.findings if not f.new}
    assert new == {"PYSEC-2018-28", "PYSEC-2023-74"}
    assert old == {"requirements.txt:1"}


def test_a_package_moved_to_another_version_is_audited_at_both(
    tmp_path: Path, osv: AdvisoryServer
) -> None:
    # pip-audit refuses one requirements file that names a package twice.
    ctx = _ctx(tmp_path, osv, "requests==2.19.0\n", "requests==2.18.0\n")
    gate = run_suite(ctx, load_suite().only(("audit",))).result("audit")
    assert gate is not None and gate.status == "warning", gate.summary
    assert {f.rule for f in gate.findings} >= {"PYSEC-2018-28"}
    assert not any(f.new for f in gate.findings)  # the base had the same advisories


def test_ignore_list_with_expiry(tmp_path: Path, osv: AdvisoryServer) -> None:
    ctx = _ctx(tmp_path, osv, "", "requests==2.19.0\n")
    future, past = dt.date.today() + dt.timedelta(days=30), dt.date.today() - dt.timedelta(days=1)
    ignore = [
        {"id": "PYSEC-2018-28", "reason": "not reachable", "expires": future},
        {"id": "CVE-2023-32681", "reason": "proxy unused", "expires": past.isoformat()},
    ]
    gate = run_suite(
        ctx, load_suite(overrides={"audit": {"ignore": ignore}}).only(("audit",))
    ).result("audit")
    assert gate is not None and gate.status == "failed"
    rules = [f.rule for f in gate.findings]
    assert "PYSEC-2018-28" not in rules and "PYSEC-2023-74" in rules
    assert "audit.ignore-expired" in rules
    ignore[1]["expires"] = future.isoformat()
    gate = run_suite(
        ctx, load_suite(overrides={"audit": {"ignore": ignore}}).only(("audit",))
    ).result("audit")
    assert gate is not None and gate.status == "passed" and "2 ignored" in gate.summary


def test_ignore_without_reason_is_refused(tmp_path: Path, osv: AdvisoryServer) -> None:
    ctx = _ctx(tmp_path, osv, "", "requests==2.19.0\n")
    gate = run_suite(
        ctx, load_suite(overrides={"audit": {"ignore": [{"id": "X"}]}}).only(("audit",))
    ).result("audit")
    assert gate is not None and gate.status == "error" and "reason" in gate.summary


def test_pip_audit_missing_or_failing_is_an_error(tmp_path: Path, osv: AdvisoryServer) -> None:
    ctx = _ctx(tmp_path, osv, "", "requests==2.19.0\n")
    missing = load_suite(overrides={"audit": {"pip_audit": str(tmp_path / "nope")}}).only(
        ("audit",)
    )
    result = run_suite(ctx, missing)
    assert result.outcomes[0].result.status == "error" and result.status == "failed"
    failing = tmp_path / "pip-audit-broken"
    failing.write_text("#!/bin/sh\necho 'boom' >&2\nexit 2\n")
    failing.chmod(0o755)
    result = run_suite(
        ctx, load_suite(overrides={"audit": {"pip_audit": str(failing)}}).only(("audit",))
    )
    gate = result.outcomes[0].result
    assert gate.status == "error" and "exit 2" in gate.summary and "boom" in gate.summary


def test_no_pins_is_skipped(tmp_path: Path, osv: AdvisoryServer) -> None:
    ctx = _ctx(tmp_path, osv, "", "requests>=2\n")
    gate = run_suite(ctx, load_suite().only(("audit",))).result("audit")
    assert gate is not None and gate.status == "skipped"
