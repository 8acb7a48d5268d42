"""Where KARMA's data folders are found, decided once per command from trusted places.

`recipes/`, `sandboxes/`, `quality_gates/` and `examples/` are data, read by exactly one
loader each. They say what runs on the host and what a gate checks, so a command builds
one `DataRoots` at its start and hands it to every loader; no loader takes the tree
under check. Each file or sub-folder is looked up in order: an explicit path,
`$KARMA_HOME/<name>`, the project's own overrides, then the copy built into the package
(the wheel ships it under `karma/_data/`; a source checkout has it at the top).

The project's overrides are a `.karma/` folder from a trusted place: the user's own
checkout as `karma build` starts (the sandboxes never see it: they mount only their
worktree), or the base commit's `.karma/` read from git objects for `karma gate` and the
action, whose working tree is the change under check.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal

from karma.errors import ConfigError, WorkspaceError
from karma.hostgit import HostGit, discover

DataFolder = Literal["recipes", "sandboxes", "quality_gates", "examples"]
OVERRIDABLE: tuple[DataFolder, ...] = ("recipes", "sandboxes", "quality_gates")
"""The folders a project may override in its `.karma/`."""

_PACKAGE = Path(__file__).resolve().parent
# Host git that reads a repository's objects: no system or global config, no pager.


def builtin_dir(name: DataFolder) -> Path:
    """The copy of a data folder that ships with KARMA."""
    installed = _PACKAGE / "_data" / name
    if installed.is_dir():
        return installed
    return _PACKAGE.parent / name


@dataclass(frozen=True)
class DataRoots:
    """The trusted places one command reads data folders from, most specific first."""

    explicit: Path | None = None
    """A folder given on purpose (a test, a bench)."""
    home: Path | None = None
    """`$KARMA_HOME`, read when the command started."""
    project: Path | None = None
    """The project's `.karma/` (the user's checkout, or the base commit's export)."""

    @classmethod
    def trusted(
        cls,
        *,
        project: Path | None = None,
        explicit: Path | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> DataRoots:
        environ = os.environ if environ is None else environ
        home = environ.get("KARMA_HOME")
        return cls(explicit=explicit, home=Path(home) if home else None, project=project)

    @classmethod
    def of_checkout(cls, root: Path, environ: Mapping[str, str] | None = None) -> DataRoots:
        """For `karma build`: the user's own checkout's `.karma/`."""
        return cls.trusted(project=root / ".karma", environ=environ)

    def path(self, name: DataFolder, relative: str) -> Path:
        """`relative` inside the most specific copy of a data folder that has it.

        Overrides are per file or sub-folder: a project's `.karma/recipes/` may hold just
        `learned/`, or a `prices.toml`, and everything else still comes from the next place.
        """
        for candidate in self.folders(name):
            if (candidate / relative).exists():
                return candidate / relative
        return builtin_dir(name) / relative

    def folders(self, name: DataFolder) -> list[Path]:
        """The copies of `name` other than the built-in one, most specific first."""
        out = [root / name for root in (self.explicit, self.home) if root is not None]
        if self.project is not None and name in OVERRIDABLE:
            out.append(self.project / name)
        return out


def data_path(name: DataFolder, relative: str, *, roots: DataRoots | None = None) -> Path:
    """`relative` in a data folder, with `roots` (or KARMA_HOME and the built-in copy)."""
    return (roots or DataRoots.trusted()).path(name, relative)


def _git(repo: Path, *args: str, stdin: bytes | None = None) -> bytes:
    """A git command on the user's repository, through the hardened host git."""
    try:
        git_dir, _ = discover(repo)
        return HostGit(git_dir, None).raw(*args, input=stdin, timeout=120)
    except WorkspaceError as exc:
        raise ConfigError(str(exc)) from None


def _safe(rel: str) -> bool:
    parts = PurePosixPath(rel).parts
    return bool(parts) and all(p not in ("", ".", "..") and "\\" not in p for p in parts)


def export_overrides(repo: Path, commit: str, dest: Path) -> Path | None:
    """Write the regular files of `commit:.karma/{recipes,sandboxes,quality_gates}` under
    `dest`, from git's objects (never the working tree); `dest`, or None when it has none.

    Symlinks and gitlinks are left out, so nothing written can lead outside `dest`.
    """
    listing = _git(repo, "ls-tree", "-r", "-z", "--full-tree", commit, "--",
                   *(f".karma/{name}" for name in OVERRIDABLE))  # fmt: skip
    blobs: list[tuple[str, str]] = []
    for entry in filter(None, listing.decode("utf-8", errors="surrogateescape").split("\0")):
        meta, _, rel = entry.partition("\t")
        mode, kind, sha = meta.split()
        if kind == "blob" and mode in ("100644", "100755") and _safe(rel):
            blobs.append((sha, rel.removeprefix(".karma/")))
    if not blobs:
        return None
    batch = _git(repo, "cat-file", "--batch", stdin="".join(f"{s}\n" for s, _ in blobs).encode())
    offset = 0
    for _sha, rel in blobs:
        header_end = batch.index(b"\n", offset)
        size = int(batch[offset:header_end].split()[2])
        body = batch[header_end + 1 : header_end + 1 + size]
        offset = header_end + 1 + size + 1
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(body)
    return dest


@contextmanager
def base_roots(
    repo: Path, commit: str, environ: Mapping[str, str] | None = None
) -> Iterator[DataRoots]:
    """For `karma gate` and the action: the data roots with the base commit's overrides,
    exported to a temporary folder removed on exit."""
    with tempfile.TemporaryDirectory(prefix="karma-base-data-") as scratch:
        project = export_overrides(repo, commit, Path(scratch))
        yield DataRoots.trusted(project=project, environ=environ)


def commit_text(repo: Path, commit: str, rel: str) -> str | None:
    """The regular file `rel` of `commit` as text, from git's objects; None if absent."""
    listing = _git(repo, "ls-tree", "-z", "--full-tree", commit, "--", rel).decode(
        "utf-8", errors="surrogateescape"
    )
    for entry in filter(None, listing.split("\0")):
        meta, _, path = entry.partition("\t")
        mode, kind, sha = meta.split()
        if path == rel and kind == "blob" and mode in ("100644", "100755"):
            return _git(repo, "cat-file", "blob", sha).decode("utf-8", errors="replace")
    return None


def base_root_names(repo: Path, commit: str) -> list[str]:
    """The names at the root of `commit`'s tree (what `detect_stack` looks at for a gate)."""
    listing = _git(repo, "ls-tree", "-z", "--name-only", commit)
    return [n for n in listing.decode("utf-8", errors="surrogateescape").split("\0") if n]
