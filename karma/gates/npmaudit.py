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
(`querybatch`, then each hit's record: `karma.gates.osv`, shared with Go and Rust). No
endpoint configured: `skipped`, saying so.
The base's lockfile is audited in the same query: what it already had never blocks.

Trust: the lockfile is the target repository's, untrusted, parsed on the host as data
only (JSON, `yaml.safe_load`, yarn's v1 format): a regular file reached without a
symlink, at most `MAX_LOCK_BYTES`; a package is a name that npm would accept (`NAME`)
at a semver version, anything else in it (a path-shaped key, a `resolved` URL, `link`
entries, a nested `..`) is never followed, fetched or run. Only names and versions
leave the host, to the configured endpoint.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from karma.advisories import semver
from karma.gates.files import read_beneath
from karma.gates.interface import GateContext, GateResult, GateSettings, GateUnavailable
from karma.gates.osv import MAX_LOCK_BYTES, Pin, at_most, audit_pins, base_text, skipped
from karma.sandbox import berrylock, pnpmlock, yarnlock
from karma.sandbox.interface import ImageBuildError

LOCKFILE = "package-lock.json"
LOCKFILES = (LOCKFILE, pnpmlock.LOCKFILE, yarnlock.LOCKFILE)
"""Each package manager's lockfile, in the order the image build chooses one."""
__all__ = ["LOCKFILE", "LOCKFILES", "MAX_LOCK_BYTES", "lock_pins", "npm_audit", "pins_of"]
NAME = re.compile(r"(@[a-z0-9][a-z0-9._~-]*/)?[a-z0-9][a-z0-9._~-]{0,213}")


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
        if packages is not None and key and "node_modules/" not in key:
            continue  # an npm workspace (`packages/core`): the project's own code
        # v2/v3: the path `node_modules/a/node_modules/b` ends in the name ("" is the root);
        # an alias (`"node_modules/x": {"name": "lodash"}`) installs its `name`.
        name = key if packages is None else key.rpartition("node_modules/")[2]
        name = entry["name"] if isinstance(entry.get("name"), str) and name else name
        version = entry.get("version")
        if NAME.fullmatch(name) and isinstance(version, str) and semver(version) is not None:
            found[(name, version)] = None
    return at_most(found, LOCKFILE)


def pins_of(lockfile: str, text: str) -> list[Pin]:
    """The (name, version) pairs of any of the lockfiles (a `yarn.lock` yarn 1's or
    berry's); what is not a package name at a semver version is left out."""
    if lockfile == LOCKFILE:
        return lock_pins(text)
    read = yarnlock.pins
    if lockfile == pnpmlock.LOCKFILE:
        read = pnpmlock.pins
    elif berrylock.is_berry(text.encode()):
        read = berrylock.pins
    try:
        pairs = read(text.encode())
    except (ImageBuildError, RecursionError) as exc:
        raise GateUnavailable(f"{lockfile} is unreadable: {exc}") from None
    found = {(n, v): None for n, v in pairs if NAME.fullmatch(n) and semver(v) is not None}
    return at_most(found, lockfile)


def _v1(deps: object, depth: int = 0) -> Iterator[tuple[str, object]]:
    """lockfileVersion 1: `dependencies` by name, each with its own nested ones."""
    if not isinstance(deps, dict) or depth > 64:
        return
    for name, entry in deps.items():
        yield name, entry
        if isinstance(entry, dict):
            yield from _v1(entry.get("dependencies"), depth + 1)


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
    if raw is None:
        names = " / ".join(ctx.at_folder(name) for name in LOCKFILES)
        return skipped(
            started,
            lockfile,
            f"no {names} (a regular file of at most "
            f"{MAX_LOCK_BYTES} bytes): the versions installed are not pinned",
        )
    if not url:
        return skipped(
            started,
            lockfile,
            "no OSV endpoint configured for npm "
            "(gates.audit.osv_url or KARMA_OSV_URL; `npm audit` needs the "
            "registry's audit endpoint, not used)",
        )
    text = raw.decode("utf-8", "replace")
    base = base_text(ctx, lockfile)
    return audit_pins(ctx, settings.timeout_s, started, ignores, ecosystem="npm",
                      lockfile=lockfile, head=pins_of(kind, text),
                      base=pins_of(kind, base) if base else [], noun="npm package",
                      line=lambda name, _version: _line(text, name, kind))  # fmt: skip
