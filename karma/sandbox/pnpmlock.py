"""pnpm's `pnpm-lock.yaml`, read as YAML data (`yaml.safe_load`), and its rules.

The format is pnpm 9's and later (`lockfileVersion: '9.0'`): `importers` maps each
project folder to its dependencies (`specifier`, `version`), `packages` maps
`name@version` to its `resolution`, `snapshots` the resolved graph. For a package of the
registry pnpm writes `resolution: {integrity: sha512-…}` and no URL (the registry it is
installed with, the public one, is the source).

The rules (`check`) are `package-lock.json`'s (`karma.sandbox.npm`): the importers are
`.` and, in a workspace, plain folders of the project (`jsworkspaces.plain_folder`),
whose `package.json` alone joins the root's in the download and the install; the
project's `pnpm-workspace.yaml` is never read (it carries settings, hooks, catalogs):
KARMA writes its own, listing the lockfile's importers (`workspace_file`). No importer
dependency on `file:` or a URL, and `link:` only to another importer (a workspace
dependency, `workspace:*`); every package a name at a version with a sha512 `integrity`
and either no `tarball` or a tarball of https://registry.npmjs.org/; no git, directory
or other host's resolution; no `patchedDependencies` (patch files the copy does not
have). The file is the target repository's, untrusted: parsed as data, never run or
obeyed on the host.
"""

from __future__ import annotations

import functools
import json
import posixpath
import re
from collections.abc import Callable, Sequence
from typing import Any

import yaml

from karma.sandbox.interface import ImageBuildError
from karma.sandbox.jsworkspaces import plain_folder
from karma.sandbox.yarnlock import NAME, registry_tarball

LOCKFILE = "pnpm-lock.yaml"
WORKSPACE = "pnpm-workspace.yaml"
VERSIONS = ("9.0",)
VERSION = re.compile(r"\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?")
PEERS = re.compile(r"(\([^()\s]+\))*")
"""The peer-dependency suffix of a snapshot's version: `18.2.0(react@18.2.0)`."""


def refused(reason: str) -> ImageBuildError:
    return ImageBuildError(
        f"{LOCKFILE} refused: {reason}",
        tip="packages come only from https://registry.npmjs.org/; regenerate "
        "pnpm-lock.yaml with pnpm 9 or later against it (`pnpm install --lockfile-only`)",
    )


@functools.lru_cache(maxsize=4)
def load(data: bytes) -> dict[str, Any]:
    """The lockfile as plain data (`safe_yaml`), parsed once for the image build's several
    readers of the same bytes (its rules, its workspaces): a mapping not to be changed."""
    return safe_yaml(data, refused)


def safe_yaml(data: bytes, refuse: Callable[[str], ImageBuildError]) -> dict[str, Any]:
    """A lockfile's YAML mapping as plain data; an alias (`*name`, which no package
    manager writes) is refused before anything is built from it: shared nodes would let a
    small file expand into a huge structure when printed or walked (the "billion
    laughs")."""
    try:
        text = data.decode("utf-8")
        if any(isinstance(event, yaml.AliasEvent) for event in yaml.parse(text, yaml.SafeLoader)):
            raise refuse("a YAML alias (`*name`), which package managers never write")
        lock = yaml.safe_load(text)
    except (UnicodeDecodeError, yaml.YAMLError, RecursionError) as exc:
        raise refuse(f"not valid YAML ({str(exc)[:200]})") from None
    if not isinstance(lock, dict):
        raise refuse("not a YAML mapping")
    return lock


def split_key(key: str) -> tuple[str, str]:
    """`@scope/name@1.2.3` -> (`@scope/name`, `1.2.3`)."""
    at = key.find("@", 1)
    return (key, "") if at < 0 else (key[:at], key[at + 1 :])


def _pinned(version: object) -> bool:
    """An importer's or snapshot's `version`: a semver with peer suffixes, or an npm
    alias to one (`name@1.2.3`); never `link:`, `file:` or a URL."""
    if not isinstance(version, str):
        return False
    if not version[:1].isdigit():
        name, version = split_key(version)
        if not NAME.fullmatch(name):
            return False
    plain = version.split("(", 1)[0]
    return bool(VERSION.fullmatch(plain)) and bool(PEERS.fullmatch(version[len(plain) :]))


def _registry_tarball(url: object) -> bool:
    return isinstance(url, str) and registry_tarball(url, ("registry.npmjs.org",))


def check(data: bytes) -> int:
    """How many packages `pnpm-lock.yaml` pins, or `ImageBuildError` with the reason it
    is refused (module docstring)."""
    lock = load(data)
    if str(lock.get("lockfileVersion")) not in VERSIONS:
        raise refused(f"lockfileVersion {str(lock.get('lockfileVersion'))[:20]!r} (9.0 is needed)")
    if lock.get("patchedDependencies"):
        raise refused("patchedDependencies (patch files are not part of what is installed)")
    importers = lock.get("importers")
    folders = workspaces(lock)
    if not isinstance(importers, dict) or "." not in importers:
        raise refused("no importer `.` (the project at the root)")
    for importer, entry in importers.items():
        for kind, deps in (entry or {}).items() if isinstance(entry, dict) else ():
            if kind not in ("dependencies", "devDependencies", "optionalDependencies"):
                continue
            for name, spec in (deps or {}).items() if isinstance(deps, dict) else ():
                version = spec.get("version") if isinstance(spec, dict) else spec
                if not _pinned(version) and _linked(str(importer), version) not in folders:
                    raise refused(f"importer {importer}: {name} is {str(version)[:120]!r}, "
                                  "not a registry version or a workspace")  # fmt: skip
    packages = lock.get("packages") or {}
    if not isinstance(packages, dict):
        raise refused("`packages` is not a mapping")
    for key, entry in packages.items():
        name, version = split_key(str(key))
        if not NAME.fullmatch(name) or not VERSION.fullmatch(version):
            raise refused(f"{str(key)[:120]!r} is not a package name at a version")
        resolution = entry.get("resolution") if isinstance(entry, dict) else None
        if not isinstance(resolution, dict):
            raise refused(f"{key}: no `resolution`")
        if set(resolution) - {"integrity", "tarball"}:
            raise refused(f"{key}: resolved from {str(resolution)[:160]!r}, not the registry")
        if "tarball" in resolution and not _registry_tarball(resolution["tarball"]):
            raise refused(f"{key}: resolved to {str(resolution['tarball'])[:160]!r}, not a "
                          "tarball of https://registry.npmjs.org/")  # fmt: skip
        integrity = resolution.get("integrity")
        if not isinstance(integrity, str) or not integrity.startswith(("sha512-", "sha384-")):
            raise refused(f"{key}: no sha512 `integrity` to check the tarball against")
    for key, entry in (lock.get("snapshots") or {}).items():
        deps = (entry or {}).get("dependencies") if isinstance(entry, dict) else None
        for name, version in (deps or {}).items():
            if not _pinned(version):
                raise refused(f"snapshot {key}: {name} is {str(version)[:120]!r}")
    return len(packages)


def workspaces(lock: dict[str, Any]) -> set[str]:
    """The workspace folders of a loaded lockfile: its importers other than `.`."""
    importers = lock.get("importers")
    folders = (
        {str(key) for key in importers if key != "."} if isinstance(importers, dict) else set()
    )
    for folder in folders:
        if not plain_folder(folder):
            raise refused(f"importer {folder[:120]!r} is not a folder of the project")
    return folders


def _linked(importer: str, version: object) -> str | None:
    """The folder a `link:../core` of `importer` points at, relative to the project."""
    if not isinstance(version, str) or not version.startswith("link:"):
        return None
    target = posixpath.normpath(posixpath.join(importer, version[len("link:") :]))
    return None if target.startswith("..") or posixpath.isabs(target) else target


def workspace_file(folders: Sequence[str]) -> str:
    """KARMA's own `pnpm-workspace.yaml`: the workspace folders, quoted (JSON strings are
    YAML), and nothing else."""
    return "packages:\n" + "".join(f"  - {json.dumps(folder)}\n" for folder in sorted(folders))


def pins(data: bytes) -> list[tuple[str, str]]:
    """(name, version) of each package, for the audit (`ImageBuildError` when unreadable)."""
    packages = load(data).get("packages") or {}
    return [split_key(str(key)) for key in packages] if isinstance(packages, dict) else []
