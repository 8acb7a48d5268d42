"""The audit gate for a Node project: its lockfile's versions against an OSV endpoint.

The lockfile is the package manager's (`karma.sandbox.npm.LOCKFILES`, in that order):
`package-lock.json`, `pnpm-lock.yaml` (its `packages` keys, `name@version`) or
`yarn.lock` (each entry's name and `version`, read by the strict v1 parser of
`karma.sandbox.yarnlock`).

`npm audit` asks the registry's audit endpoint, which is not reachable from here (the
registry answers package requests only), and would run npm on the host with the
repository's `.npmrc`. So the gate reads the lockfile itself and asks the OSV endpoint
the audit gate is configured with (`gates.audit.osv_url`, `KARMA_OSV_URL`; `karma
advisories serve` answers npm queries from an OSV folder) about each installed package
(`querybatch`, then each hit's record). No endpoint configured: `skipped`, saying so.
The base's lockfile is audited in the same query: what it already had never blocks.

Trust: the lockfile is the target repository's, untrusted, parsed on the host as data
only (JSON, `yaml.safe_load`, yarn's v1 format): a regular file reached without a
symlink, at most `MAX_LOCK_BYTES`; a package is a name that npm would accept (`NAME`)
at a semver version, anything else in it (a path-shaped key, a `resolved` URL, `link`
entries, a nested `..`) is never followed, fetched or run. Only names and versions
leave the host, to the configured endpoint.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

from karma.advisories import semver
from karma.gates.change import git
from karma.gates.files import read_beneath
from karma.gates.interface import (
    Finding,
    GateContext,
    GateResult,
    GateSettings,
    GateUnavailable,
    Status,
)
from karma.sandbox import pnpmlock, yarnlock
from karma.sandbox.interface import ImageBuildError

LOCKFILE = "package-lock.json"
LOCKFILES = (LOCKFILE, pnpmlock.LOCKFILE, yarnlock.LOCKFILE)
"""Each package manager's lockfile, in the order the image build chooses one."""
MAX_LOCK_BYTES = 32 * 1024 * 1024
MAX_PACKAGES = 20_000
MAX_REPLY_BYTES = 16 * 1024 * 1024
NAME = re.compile(r"(@[a-z0-9][a-z0-9._~-]*/)?[a-z0-9][a-z0-9._~-]{0,213}")
Pin = tuple[str, str]
Vulns = dict[Pin, dict[str, tuple[list[str], list[str], str]]]


def lock_pins(text: str) -> list[Pin]:
    """The (name, version) of each package a lockfile installs (v2/v3 `packages`, or v1's
    nested `dependencies`); what is not a package name at a semver version is left out."""
    try:
        lock = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise GateUnavailable(f"{LOCKFILE} is not valid JSON: {exc}") from None
    if not isinstance(lock, dict):
        raise GateUnavailable(f"{LOCKFILE} is not a JSON object")
    found: dict[Pin, None] = {}
    packages = lock.get("packages")
    entries = packages.items() if isinstance(packages, dict) else _v1(lock.get("dependencies"))
    for key, entry in entries:
        if not isinstance(entry, dict) or entry.get("link") or not isinstance(key, str):
            continue
        # v2/v3: the path `node_modules/a/node_modules/b` ends in the name ("" is the root);
        # an alias (`"node_modules/x": {"name": "lodash"}`) installs its `name`.
        name = key if packages is None else key.rpartition("node_modules/")[2]
        name = entry["name"] if isinstance(entry.get("name"), str) and name else name
        version = entry.get("version")
        if NAME.fullmatch(name) and isinstance(version, str) and semver(version) is not None:
            found[(name, version)] = None
        if len(found) > MAX_PACKAGES:
            raise GateUnavailable(f"{LOCKFILE} lists over {MAX_PACKAGES} packages")
    return list(found)


def pins_of(lockfile: str, text: str) -> list[Pin]:
    """The (name, version) pairs of any of the three lockfiles; what is not a package
    name at a semver version is left out."""
    if lockfile == LOCKFILE:
        return lock_pins(text)
    read = pnpmlock.pins if lockfile == pnpmlock.LOCKFILE else yarnlock.pins
    try:
        pairs = read(text.encode())
    except (ImageBuildError, RecursionError) as exc:
        raise GateUnavailable(f"{lockfile} is unreadable: {exc}") from None
    found = {(n, v): None for n, v in pairs if NAME.fullmatch(n) and semver(v) is not None}
    if len(found) > MAX_PACKAGES:
        raise GateUnavailable(f"{lockfile} lists over {MAX_PACKAGES} packages")
    return list(found)


def _v1(deps: object, depth: int = 0) -> Iterator[tuple[str, object]]:
    """lockfileVersion 1: `dependencies` by name, each with its own nested ones."""
    if not isinstance(deps, dict) or depth > 64:
        return
    for name, entry in deps.items():
        yield name, entry
        if isinstance(entry, dict):
            yield from _v1(entry.get("dependencies"), depth + 1)


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


def query(url: str, pins: list[Pin], timeout_s: float) -> Vulns:
    """{(name, version): {id: (aliases, fixed versions, summary)}} from the OSV API."""
    root = url.rstrip("/").removesuffix("/query")
    queries = [{"package": {"ecosystem": "npm", "name": n}, "version": v} for n, v in pins]
    answer = _post(f"{root}/querybatch", {"queries": queries}, timeout_s)
    results = answer.get("results") if isinstance(answer, dict) else None
    if not isinstance(results, list) or len(results) != len(pins):
        raise GateUnavailable("the OSV endpoint's querybatch answer does not match the query")
    records: dict[str, dict[str, Any]] = {}
    found: Vulns = {}
    for pin, result in zip(pins, results, strict=True):
        for hit in (result or {}).get("vulns") or ():
            vid = str(hit.get("id", ""))
            if not re.fullmatch(r"[A-Za-z0-9._:-]{1,100}", vid):
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


def _base_lock(ctx: GateContext, lockfile: str) -> str | None:
    listed = git(ctx, "ls-tree", ctx.base, lockfile).split()
    if len(listed) < 3 or listed[1] != "blob":
        return None
    if int(git(ctx, "cat-file", "-s", listed[2]) or 0) > MAX_LOCK_BYTES:
        return None
    return git(ctx, "show", f"{ctx.base}:{lockfile}")


def _line(text: str, name: str, lockfile: str) -> int:
    needles = {LOCKFILE: (f'"node_modules/{name}"',), pnpmlock.LOCKFILE: (f"\n  {name}@",),
               yarnlock.LOCKFILE: (f"\n{name}@", f'\n"{name}@')}  # fmt: skip
    found = [at for n in needles[lockfile] if (at := text.find(n)) >= 0]
    if not found:
        return 0
    return text.count("\n", 0, min(found)) + 1 + (lockfile != LOCKFILE)


def npm_audit(
    ctx: GateContext, settings: GateSettings, started: float, ignores: list[Any]
) -> GateResult:
    """The audit of a Node project (module docstring); `ignores`: the audit's ignore list."""
    url = ctx.config.gates.audit.osv_url

    raw, kind, lockfile = None, LOCKFILE, ctx.at_folder(LOCKFILE)
    for kind in LOCKFILES:  # the stack's folder's, in a mixed repository
        lockfile = ctx.at_folder(kind)
        if (raw := read_beneath(ctx.repo, lockfile, MAX_LOCK_BYTES)) is not None:
            break

    def done(
        status: Status, summary: str, findings: tuple[Finding, ...] = (), **data: Any
    ) -> GateResult:
        return GateResult("audit", status, findings, time.monotonic() - started, summary,
                          data={"source": lockfile, **data})  # fmt: skip

    if raw is None:
        names = " / ".join(ctx.at_folder(name) for name in LOCKFILES)
        return done("skipped", f"no {names} (a regular file of at most {MAX_LOCK_BYTES} "
                    "bytes): the versions installed are not pinned", packages=0)  # fmt: skip
    if not url:
        return done("skipped", "no OSV endpoint configured for npm (gates.audit.osv_url or "
                    "KARMA_OSV_URL; `npm audit` needs the registry's audit endpoint, not "
                    "used)", packages=0)  # fmt: skip
    text = raw.decode("utf-8", "replace")
    head = pins_of(kind, text)
    base_text = _base_lock(ctx, lockfile)
    base = pins_of(kind, base_text) if base_text else []
    vulns = query(url, sorted(set(head) | set(base)), min(settings.timeout_s, 60))
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
                                    _line(text, name, kind), message, new))  # fmt: skip
    blocking = sum(f.new and f.severity == "error" for f in findings)
    status: Status = "failed" if blocking else ("warning" if findings else "passed")
    return done(status, f"{len(head)} npm package(s) from {lockfile}: {blocking} new "
                f"vulnerability(ies), {len(findings) - blocking} pre-existing, {ignored} "
                "ignored", tuple(findings), packages=len(head))  # fmt: skip
