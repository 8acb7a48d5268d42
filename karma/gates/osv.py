"""The audit gate's OSV route: one lockfile's pins, base and head, against an OSV endpoint.

Every stack whose installed versions come from a lockfile KARMA reads as data (npm's
three, `go.sum`, `Cargo.lock`) is audited the same way: the head's and the base's
(name, version) pins go in one `querybatch` to the configured endpoint
(`gates.audit.osv_url`, `KARMA_OSV_URL`; `karma advisories serve` answers from an OSV
folder), each hit's record is fetched once (`/vulns/<id>`), and only a vulnerability the
base did not already have blocks; an ignore entry silences one until its expiry.

Trust: the endpoint is the operator's (configuration); its answer is read as data, at
most `MAX_REPLY_BYTES`, and an id that is not id-shaped is never put in a URL. Only
ecosystem names, package names and versions leave the host.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from karma.gates.change import git
from karma.gates.interface import Finding, GateContext, GateResult, GateUnavailable, Status

MAX_LOCK_BYTES = 32 * 1024 * 1024
"""The largest lockfile read (head or base); a bigger one is not read."""
MAX_PACKAGES = 20_000
MAX_REPLY_BYTES = 16 * 1024 * 1024
VULN_ID = re.compile(r"[A-Za-z0-9._:-]{1,100}")
Pin = tuple[str, str]
Vulns = dict[Pin, dict[str, tuple[list[str], list[str], str]]]


def _post(url: str, body: Any, timeout_s: float) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(  # noqa: S310 - the configured OSV endpoint
        url, data=data, headers={"Content-Type": "application/json"},
        method="POST" if data is not None else "GET",
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as reply:  # noqa: S310
            raw = reply.read(MAX_REPLY_BYTES + 1)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise GateUnavailable(f"the OSV endpoint {url} did not answer: {exc}") from None
    if len(raw) > MAX_REPLY_BYTES:
        raise GateUnavailable(f"the OSV endpoint's answer is over {MAX_REPLY_BYTES} bytes")
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        raise GateUnavailable(f"the OSV endpoint {url} answered with no JSON") from None


def query(url: str, ecosystem: str, pins: list[Pin], timeout_s: float) -> Vulns:
    """{(name, version): {id: (aliases, fixed versions, summary)}} from the OSV API, for
    packages of one OSV `ecosystem` ("npm", "Go", "crates.io", ...)."""
    root = url.rstrip("/").removesuffix("/query")
    queries = [{"package": {"ecosystem": ecosystem, "name": n}, "version": v} for n, v in pins]
    answer = _post(f"{root}/querybatch", {"queries": queries}, timeout_s)
    results = answer.get("results") if isinstance(answer, dict) else None
    if not isinstance(results, list) or len(results) != len(pins):
        raise GateUnavailable("the OSV endpoint's querybatch answer does not match the query")
    records: dict[str, dict[str, Any]] = {}
    found: Vulns = {}
    for pin, result in zip(pins, results, strict=True):
        for hit in (result or {}).get("vulns") or ():
            vid = str(hit.get("id", ""))
            if not VULN_ID.fullmatch(vid):
                continue
            if vid not in records:
                record = _post(f"{root}/vulns/{vid}", None, timeout_s)
                records[vid] = record if isinstance(record, dict) else {}
            record = records[vid]
            fixed = sorted({str(e["fixed"]) for a in record.get("affected") or ()
                            if (a.get("package") or {}).get("name") == pin[0]
                            for r in a.get("ranges") or () for e in r.get("events") or ()
                            if "fixed" in e})  # fmt: skip
            text = str(record.get("summary") or record.get("details") or "")
            found.setdefault(pin, {})[vid] = (list(record.get("aliases") or ()), fixed, text)
    return found


def base_text(ctx: GateContext, path: str) -> str | None:
    """The base commit's `path` (a blob of at most `MAX_LOCK_BYTES`), or None."""
    listed = git(ctx, "ls-tree", ctx.base, path).split()
    if len(listed) < 3 or listed[1] != "blob":
        return None
    if int(git(ctx, "cat-file", "-s", listed[2]) or 0) > MAX_LOCK_BYTES:
        return None
    return git(ctx, "show", f"{ctx.base}:{path}")


def at_most(pins: dict[Pin, None], lockfile: str) -> list[Pin]:
    """`pins` in order, refused past `MAX_PACKAGES` (no query of that size is sent)."""
    if len(pins) > MAX_PACKAGES:
        raise GateUnavailable(f"{lockfile} lists over {MAX_PACKAGES} packages")
    return list(pins)


def skipped(started: float, lockfile: str, reason: str) -> GateResult:
    """The audit skipped, with the lockfile it looked for and why."""
    return GateResult("audit", "skipped", (), time.monotonic() - started, reason,
                      data={"source": lockfile, "packages": 0})  # fmt: skip


def audit_pins(
    ctx: GateContext,
    settings_timeout_s: float,
    started: float,
    ignores: list[Any],
    *,
    ecosystem: str,
    lockfile: str,
    head: list[Pin],
    base: list[Pin],
    line: Callable[[str, str], int],
    noun: str,
) -> GateResult:
    """The audit's result for `head` (the lockfile's pins now) against `base` (the base
    commit's): `line(name, version)` is a finding's line in `lockfile`; `noun` names what
    a pin is in the summary ("npm package", "Go module", "crate")."""
    url = ctx.config.gates.audit.osv_url
    assert url  # the caller skips first, with its ecosystem's reason
    vulns = query(url, ecosystem, sorted(set(head) | set(base)), min(settings_timeout_s, 60))
    at_base = {v for pin in base for v in vulns.get(pin, {})}
    today = dt.date.today()
    findings: list[Finding] = []
    ignored = 0
    for name, version in head:
        for vid, (aliases, fixed, summary) in vulns.get((name, version), {}).items():
            rule = next((i for i in ignores if i.id in {vid, *aliases}), None)
            if rule is not None and (rule.expires is None or rule.expires >= today):
                ignored += 1
                continue
            new = vid not in at_base
            fix = f"; fixed in {', '.join(fixed)}" if fixed else ""
            alias = f" ({', '.join(sorted(aliases))})" if aliases else ""
            message = f"{name} {version} is vulnerable: {vid}{alias}{fix}. {summary[:300]}"
            findings.append(Finding(vid, "error" if new else "warning", lockfile,
                                    line(name, version), message, new))  # fmt: skip
    blocking = sum(f.new and f.severity == "error" for f in findings)
    status: Status = "failed" if blocking else ("warning" if findings else "passed")
    return GateResult("audit", status, tuple(findings), time.monotonic() - started,
                      f"{len(head)} {noun}(s) from {lockfile}: {blocking} new "
                      f"vulnerability(ies), {len(findings) - blocking} pre-existing, "
                      f"{ignored} ignored", data={"source": lockfile, "packages": len(head)},
                      )  # fmt: skip
