"""A JavaScript monorepo's workspaces (npm's, pnpm's, yarn 1's), as the image build sees them.

A lockfile names each workspace by its folder (npm: a `packages` key outside
`node_modules/`; pnpm: an `importers` key other than `.`); yarn 1's names none, so the
root `package.json`'s `workspaces` patterns are expanded (`patterns`: a folder, or a
folder's `/*`). A workspace's name is its folder's `package.json` `name`. The image
links `/node_modules/<name>` to the folder in the sandbox's mounted tree (`links_file`,
read by `sandboxes/node/Dockerfile`), so a workspace that imports another runs the
change's code, wherever the package manager put its own link (npm and yarn at the
root's `node_modules/`, pnpm's hoisted linker inside the dependent workspace).

Trust: folders and names come from the target repository's lockfile and manifests,
untrusted. A folder is used only when it is a plain relative path (`plain_folder`: no
`..`, `.`, `.git`, `node_modules`, backslash, control character or empty segment) and
a name only when npm would accept it (`NAME`); the links file KARMA writes from them is
data the recipe reads line by line, two words a line, never evaluated.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from karma.confine import kind_at, open_dir, opened, read_bytes, relative_parts
from karma.sandbox.interface import ImageBuildError
from karma.sandbox.yarnlock import NAME

MANIFEST = "package.json"
LINKS = "workspaces.txt"
"""The file in the image context's deps folder: `<name> <folder>` per workspace."""


def plain_folder(where: str) -> bool:
    """Whether `where` is a folder below the project that a workspace may be."""
    segments = where.split("/")
    return (
        not where.startswith("/")
        and where.isprintable()  # no newline: `links_file` is read a line a workspace
        and all(
            s not in ("", ".", "..", "node_modules") and s.lower() != ".git" and "\\" not in s
            for s in segments
        )
    )


def patterns(manifest: bytes) -> tuple[str, ...]:
    """The `workspaces` of a root `package.json` (a list, or `{"packages": [...]}`), each a
    plain folder or a plain folder's `*` children (`packages/*`); `ImageBuildError` for
    another glob (`**`, braces, `!`), which KARMA does not expand."""
    try:
        root = json.loads(manifest.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return ()
    wanted = root.get("workspaces") if isinstance(root, dict) else None
    if isinstance(wanted, dict):
        wanted = wanted.get("packages")
    if not wanted:
        return ()
    if not isinstance(wanted, list) or not all(isinstance(w, str) for w in wanted):
        raise ImageBuildError(f"{MANIFEST} refused: `workspaces` is not a list of folders")
    found = []
    for pattern in wanted:
        folder = pattern.removesuffix("/").removesuffix("/*").removeprefix("./")
        if not plain_folder(folder) or any(c in folder for c in "*?[]{}!"):
            raise ImageBuildError(
                f"{MANIFEST} refused: workspace pattern {pattern[:80]!r} (a folder, or a "
                "folder's `/*`, is expanded; no other glob)"
            )
        found.append(pattern.removesuffix("/").removeprefix("./"))
    return tuple(found)


def manifests(folders: Sequence[str]) -> tuple[str, ...]:
    """The `package.json` of each workspace folder, as paths below the project."""
    return tuple(f"{folder}/{MANIFEST}" for folder in sorted(folders))


def links_file(folders: Sequence[str], files: Mapping[str, bytes]) -> str:
    """`<name> <folder>` for each workspace whose manifest names it (`ImageBuildError`
    for a manifest that is not a JSON object or a name npm would not accept)."""
    lines = []
    for folder in sorted(folders):
        try:
            manifest = json.loads(files[f"{folder}/{MANIFEST}"].decode("utf-8"))
        except (KeyError, UnicodeDecodeError, ValueError, RecursionError):
            raise ImageBuildError(f"{folder}/{MANIFEST} refused: missing or not JSON") from None
        if not isinstance(manifest, dict):
            raise ImageBuildError(f"{folder}/{MANIFEST} refused: not a JSON object")
        name = manifest.get("name")
        if name is None:
            continue  # nothing can import it by name
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise ImageBuildError(f"{folder}/{MANIFEST} refused: name {str(name)[:80]!r}")
        lines.append(f"{name} {folder}\n")
    return "".join(lines)


def expand(project: Path, wanted: Sequence[str]) -> tuple[str, ...]:
    """The folders below `project` that yarn 1's `patterns` name and that hold a
    `package.json` (yarn skips the others): `packages/core`, or each folder in `packages/`
    for `packages/*`; never through a symlink, never a hidden folder or node_modules."""
    found: set[str] = set()
    with opened(project) as root:
        for pattern in wanted:
            folders = _children(root, pattern[:-2]) if pattern.endswith("/*") else [pattern]
            for folder in folders:
                try:
                    if kind_at(root, relative_parts(f"{folder}/{MANIFEST}")) == "file":
                        found.add(folder)
                except OSError:  # a symlink on the way
                    continue
    return tuple(sorted(found))


def _children(root: int, parent: str) -> list[str]:
    """The plain, visible folders in `parent` (none when it is missing or a link)."""
    try:
        fd = open_dir(root, relative_parts(parent))
    except OSError:
        return []
    try:
        with os.scandir(fd) as entries:
            names = [e.name for e in entries if e.is_dir(follow_symlinks=False)]
    finally:
        os.close(fd)
    return [f"{parent}/{n}" for n in names if not n.startswith(".") and n != "node_modules"]


def read_manifests(
    project: Path, folders: Sequence[str], limit: int
) -> tuple[tuple[str, bytes], ...]:
    """Each folder's `package.json` below `project`, read through no symlink, at most
    `limit` bytes (`ImageBuildError` for one that is missing, linked or larger)."""
    found = []
    with opened(project) as root:
        for name in manifests(folders):
            try:
                contents = read_bytes(root, relative_parts(name), limit)
            except OSError as exc:  # PathRefused too: a symlink on the way, `..`, `.git`
                raise ImageBuildError(f"dependency file {name} refused: {exc}") from None
            if contents.size > limit:
                raise ImageBuildError(
                    f"dependency file {name} refused: larger than {limit >> 10} KiB"
                )
            found.append((name, contents.data))
    return tuple(found)
