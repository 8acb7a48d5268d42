"""The audit gate for a Go or Rust project: `go.sum` / `Cargo.lock` against an OSV endpoint.

Neither stack has a vulnerability service reachable from here (`govulncheck` and
`cargo audit` fetch their databases), so the gate reads the lockfile and asks the OSV
endpoint the audit gate is configured with (`gates.audit.osv_url`, `KARMA_OSV_URL`),
through the route npm's audit uses (`karma.gates.osv`: one `querybatch`, base and head,
only new vulnerabilities block). No endpoint configured: `skipped`, saying so.

- Go (OSV ecosystem `Go`): the modules of `go.sum` whose source is hashed (a
  `module vX.Y.Z h1:...` line). A version with only a `/go.mod` line is one whose
  go.mod the module graph read but whose code the build does not use (minimal version
  selection chose a newer one), so it is left out rather than reported; its `/go.mod`
  line folds into the module's pin otherwise. Versions go to OSV without their leading
  `v` (OSV's Go records say `"fixed": "0.3.8"`); `+incompatible` and pseudo-versions
  are semver. go.sum rather than go.mod: go.mod lists only direct requirements before
  Go 1.17, go.sum every module the build verifies.
- Rust (OSV ecosystem `crates.io`): the `[[package]]` entries of `Cargo.lock` whose
  `source` is crates.io's registry; path (workspace) and git packages have no crates.io
  version, so they are not queried.

Trust: the lockfile is the target repository's, untrusted, read on the host as data
only (`go.sum` split into fields, `Cargo.lock` by `tomllib`): a regular file reached
without a symlink (`read_beneath`), at most `MAX_LOCK_BYTES`; a pin is a module path or
crate name of the expected shape at a semver version, anything else (a `..` path, a URL,
a `replace`d or git source) is never followed, fetched or run.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from karma.advisories import semver
from karma.gates.files import read_beneath
from karma.gates.interface import GateContext, GateResult, GateSettings, GateUnavailable
from karma.gates.osv import MAX_LOCK_BYTES, Pin, at_most, audit_pins, base_text, skipped

GO_SUM = "go.sum"
CARGO_LOCK = "Cargo.lock"
CRATES_IO = "registry+https://github.com/rust-lang/crates.io-index"
"""The `source` Cargo writes for a crates.io package (git index or sparse protocol)."""
MODULE = re.compile(r"[a-z0-9][A-Za-z0-9._~-]*(?:/[A-Za-z0-9._~+-]+)*")
CRATE = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")


def go_pins(text: str) -> list[Pin]:
    """(module path, version without `v`) of each module go.sum hashes the source of."""
    found: dict[Pin, None] = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) != 3 or fields[1].endswith("/go.mod"):
            continue
        module, version = fields[0], fields[1]
        if (
            MODULE.fullmatch(module)
            and ".." not in module.split("/")
            and version.startswith("v")
            and semver(version[1:]) is not None
        ):
            found[(module, version[1:])] = None
    return at_most(found, GO_SUM)


def cargo_pins(text: str) -> list[Pin]:
    """(name, version) of each crates.io package of a Cargo.lock."""
    try:
        lock = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, RecursionError) as exc:
        raise GateUnavailable(f"{CARGO_LOCK} is not valid TOML: {exc}") from None
    packages = lock.get("package")
    found: dict[Pin, None] = {}
    for entry in packages if isinstance(packages, list) else ():
        if not isinstance(entry, dict) or entry.get("source") != CRATES_IO:
            continue  # a path (workspace) or git package: no crates.io version to ask about
        name, version = entry.get("name"), entry.get("version")
        if (
            isinstance(name, str)
            and CRATE.fullmatch(name)
            and isinstance(version, str)
            and semver(version) is not None
            and not version.startswith("v")
        ):
            found[(name, version)] = None
    return at_most(found, CARGO_LOCK)


def _go_line(text: str, name: str, version: str) -> int:
    needle = f"{name} v{version} "
    return next((n for n, line in enumerate(text.splitlines(), 1) if line.startswith(needle)), 0)


def _cargo_line(text: str, name: str, version: str) -> int:
    at = text.find(f'name = "{name}"\nversion = "{version}"')
    return text.count("\n", 0, at) + 1 if at >= 0 else 0


@dataclass(frozen=True)
class Route:
    """What one stack's audit reads and asks OSV about."""

    ecosystem: str
    lockfile: str
    pins: Callable[[str], list[Pin]]
    line: Callable[[str, str, str], int]
    noun: str


ROUTES = {
    "go": Route("Go", GO_SUM, go_pins, _go_line, "Go module"),
    "rust": Route("crates.io", CARGO_LOCK, cargo_pins, _cargo_line, "crate"),
}
"""By stack name (recipes/stacks/go.toml, rust.toml)."""


def lock_audit(
    ctx: GateContext, settings: GateSettings, started: float, ignores: list[Any]
) -> GateResult:
    """The audit of a Go or Rust project (module docstring); `ignores`: the ignore list."""
    assert ctx.stack is not None
    route = ROUTES[ctx.stack.name]
    lockfile = ctx.at_folder(route.lockfile)  # the stack's folder's, in a mixed repository
    raw = read_beneath(ctx.repo, lockfile, MAX_LOCK_BYTES)
    if raw is None:
        return skipped(started, lockfile, f"no {lockfile} (a regular file of at most "
                       f"{MAX_LOCK_BYTES} bytes): no third-party {route.noun}s pinned")  # fmt: skip
    if not ctx.config.gates.audit.osv_url:
        return skipped(started, lockfile, f"no OSV endpoint configured for {route.ecosystem} "
                       "(gates.audit.osv_url or KARMA_OSV_URL; no other vulnerability "
                       "service is reachable from the host)")  # fmt: skip
    text = raw.decode("utf-8", "replace")
    base = base_text(ctx, lockfile)
    return audit_pins(ctx, settings.timeout_s, started, ignores, ecosystem=route.ecosystem,
                      lockfile=lockfile, head=route.pins(text),
                      base=route.pins(base) if base else [], noun=route.noun,
                      line=lambda name, version: route.line(text, name, version))  # fmt: skip
