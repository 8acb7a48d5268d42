"""yarn 2+ ("berry") `yarn.lock`, read as YAML data, and its rules.

A berry lockfile starts with `__metadata:` (`version`, `cacheKey`), then one entry per
resolved package: its descriptors as the key (`"ms@npm:^2.1.1, ms@npm:^2.1.3"`), a
`resolution` (`ms@npm:2.1.3`), a `checksum` of the archive yarn keeps in its cache
(`10c0/<sha512>`), `languageName`, `linkType`. The toolchain's yarn is one pinned
version (`YARN_BERRY`, `sandboxes/node/toolchain/Dockerfile`), which installs a lockfile
of its own format only: `__metadata.version` `FORMAT` and cache key `CACHE_KEY` (another
version re-resolves, which the offline install cannot).

The rules (`check`), `package-lock.json`'s (`karma.sandbox.npm`): every package is
`<name>@npm:<version>` (from the registry the install is pointed at, the public one) with
a checksum, or yarn's own built-in compatibility patch of one
(`typescript@patch:typescript@npm%3A5.9.3#optional!builtin<compat/typescript>::…`, which
yarn applies from its own code); the project itself is `<name>@workspace:.`. A git,
`file:`, `link:`, `portal:`, `exec:` or URL source, a patch file, and another workspace
(yarn's workspaces are not installed) are refused. The file is the target repository's,
untrusted: parsed as data (`yaml.safe_load`, aliases refused), never run or obeyed on
the host; its `.yarnrc.yml`, `.yarn/` and `packageManager` are never read.
"""

from __future__ import annotations

import re
from typing import Any

from karma.sandbox.interface import ImageBuildError
from karma.sandbox.pnpmlock import safe_yaml
from karma.sandbox.yarnlock import LOCKFILE, NAME

YARN_BERRY = "4.18.1"
FORMAT = 10
CACHE_KEY = "10c0"
SEMVER = r"\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?"
REGISTRY = re.compile(rf"(?P<name>{NAME.pattern})@npm:(?P<version>{SEMVER})")
BUILTIN_PATCH = re.compile(
    rf"(?P<name>{NAME.pattern})@patch:(?P=name)@npm%3A(?P<version>{SEMVER})"
    rf"#(?:optional!)?builtin<compat/[a-z-]+>::version=(?P=version)&hash=[0-9a-f]+"
)
ROOT = re.compile(rf"{NAME.pattern}@workspace:\.")
CHECKSUM = re.compile(rf"{CACHE_KEY}/[0-9a-f]{{128}}")
DESCRIPTOR = re.compile(rf"{NAME.pattern}@(?:npm:|patch:|workspace:\.$)")


def is_berry(data: bytes) -> bool:
    """Whether a `yarn.lock` is berry's (YAML with `__metadata`), not yarn 1's."""
    return b"\n__metadata:" in data[:4096] or data.startswith(b"__metadata:")


def refused(reason: str) -> ImageBuildError:
    return ImageBuildError(
        f"{LOCKFILE} refused: {reason}",
        tip=f"packages come only from https://registry.npmjs.org/; regenerate yarn.lock with "
        f"yarn {YARN_BERRY} or later (`yarn install`) against it",
    )


def load(data: bytes) -> dict[str, Any]:
    lock = safe_yaml(data, refused)
    meta = lock.get("__metadata")
    if not isinstance(meta, dict):
        raise refused("no `__metadata`")
    version, key = meta.get("version"), str(meta.get("cacheKey"))
    if version != FORMAT or key != CACHE_KEY:
        raise refused(
            f"lockfile version {str(version)[:10]} with cache key {key[:10]!r}: the "
            f"toolchain's yarn {YARN_BERRY} installs version {FORMAT}, cache key {CACHE_KEY} "
            "(its default compression) offline"
        )
    return lock


def check(data: bytes) -> int:
    """How many packages a berry `yarn.lock` pins, or `ImageBuildError` with the reason
    it is refused (module docstring)."""
    count = 0
    for key, entry in load(data).items():
        if key == "__metadata":
            continue
        where = str(key)[:120]
        for descriptor in str(key).split(","):
            if not DESCRIPTOR.match(descriptor.strip()):
                raise refused(f"{where!r} names a source other than the registry")
        resolution = entry.get("resolution") if isinstance(entry, dict) else None
        if not isinstance(resolution, str):
            raise refused(f"{where}: no `resolution`")
        if ROOT.fullmatch(resolution):
            continue
        if not (REGISTRY.fullmatch(resolution) or BUILTIN_PATCH.fullmatch(resolution)):
            raise refused(f"{where}: resolved to {resolution[:160]!r}, not a registry package "
                          "(or yarn's built-in patch of one); yarn workspaces are not "
                          "installed")  # fmt: skip
        if not CHECKSUM.fullmatch(str(entry.get("checksum"))):
            raise refused(f"{where}: no {CACHE_KEY} `checksum` to check the archive against")
        count += 1
    return count


def pins(data: bytes) -> list[tuple[str, str]]:
    """(name, version) of each registry package, for the audit (`ImageBuildError` when
    unreadable)."""
    found = []
    for entry in load(data).values():
        resolution = entry.get("resolution") if isinstance(entry, dict) else None
        match = REGISTRY.fullmatch(resolution) if isinstance(resolution, str) else None
        if match:
            found.append((match["name"], match["version"]))
    return found
