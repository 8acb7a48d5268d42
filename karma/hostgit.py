"""Every git process the host runs: explicit repository, no foreign configuration.

The trees KARMA works on are written by models and sandboxes, so the host's git must not
discover a repository in them, load configuration from them, or run a program they
name. A `HostGit` is made from values read before any sandbox ran (the user's git
directory, a worktree's admin directory recorded at creation) and runs git with:

- `--git-dir` (and `--work-tree` when a tree is involved): no discovery, so a `.git`
  file a sandbox rewrote is never read;
- an environment built from an allowlist (no inherited `GIT_DIR`, `GIT_EXEC_PATH`,
  `GIT_CONFIG_PARAMETERS`, `GIT_EXTERNAL_DIFF`, ...), with the system and global config
  files and the system attributes file off;
- command-line settings (the highest precedence, and inherited by any git child) that
  switch off every configuration key that runs a program, and no transport but none.

Git recurses into nested repositories (an untracked `vendor/.git`, a submodule) and
runs the nested repository's own configuration, which no setting here can name (a
`filter.<name>.clean` declared in its `info/attributes`). So before the host's git
touches a tree a sandbox could write, `refuse_nested_git` walks it (without following
symlinks) and refuses any `.git` below the root; `new_gitlinks` finds gitlinks a change
would add. Every failure is a `WorkspaceError`.
"""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from karma.errors import WorkspaceError

# Keys that make git run a program, each pinned to a value that runs none (or a
# harmless builtin answer where git insists on a command). Definitions of drivers
# (`diff.<d>.textconv`, `filter.<d>.clean`, `merge.<d>.driver`) cannot be named in
# advance: git reads them only from the user's own repository config and from here,
# and `--no-textconv`/`--no-ext-diff` plus the nested-repository refusal cover the rest.
HARDENED_CONFIG: tuple[tuple[str, str], ...] = (
    ("core.fsmonitor", "false"),
    ("core.hooksPath", "/dev/null"),
    ("core.attributesFile", "/dev/null"),
    ("core.untrackedCache", "false"),
    ("core.pager", "cat"),
    ("core.editor", "false"),
    ("sequence.editor", "false"),
    ("core.askPass", ""),
    ("credential.helper", ""),
    ("core.sshCommand", "false"),
    ("core.gitProxy", ""),
    ("core.alternateRefsCommand", ""),
    ("diff.external", ""),
    ("gpg.program", "false"),
    ("gpg.ssh.program", "false"),
    ("gpg.x509.program", "false"),
    ("gpg.ssh.defaultKeyCommand", ""),
    ("commit.gpgSign", "false"),
    ("tag.gpgSign", "false"),
    ("log.showSignature", "false"),
    ("merge.renormalize", "false"),
    ("interactive.diffFilter", ""),
    ("uploadpack.packObjectsHook", ""),
    ("protocol.allow", "never"),
    ("safe.directory", "*"),
    ("gc.auto", "0"),
    ("maintenance.auto", "false"),
    ("submodule.recurse", "false"),
    ("status.submoduleSummary", "false"),
    ("diff.ignoreSubmodules", "all"),
    ("fetch.recurseSubmodules", "false"),
    ("core.excludesFile", "/dev/null"),
)

# What git may see of the host environment: enough to find programs and temp space.
_ENV_ALLOWLIST = ("PATH", "HOME", "TMPDIR", "TZ", "SYSTEMROOT")
_ENV_FIXED = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_ATTR_NOSYSTEM": "1",
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_PROTOCOL_FROM_USER": "0",
    "GIT_NO_LAZY_FETCH": "1",
    "GIT_OPTIONAL_LOCKS": "0",
    "LC_ALL": "C",
}
# Subcommands that render blob content: textconv and external diff are off for them.
_RENDERING: dict[str, tuple[str, ...]] = {
    "diff": ("--no-ext-diff", "--no-textconv"),
    "show": ("--no-ext-diff", "--no-textconv"),
    "log": ("--no-ext-diff", "--no-textconv"),
    "blame": ("--no-textconv",),
}
SCAN_LIMIT = 1_000_000
"""Entries `refuse_nested_git` walks before it refuses a tree as too large to check."""


class GitFailed(WorkspaceError):
    """A git process failed (non-zero exit, timeout, not started)."""

    def __init__(self, message: str, *, returncode: int = -1, stdout: str = "") -> None:
        super().__init__(message)
        self.returncode = returncode
        self.stdout = stdout


class NestedRepository(WorkspaceError):
    """A tree holds a `.git` below its root or adds a gitlink: the host's git refuses it."""

    tip = (
        "remove the nested .git (vendor the files without their repository) "
        "and do not add submodules"
    )


def git_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of every host git: the allowlist, then the fixed settings."""
    env = {k: os.environ[k] for k in _ENV_ALLOWLIST if k in os.environ}
    env.update(_ENV_FIXED)
    env.update(extra or {})
    return env


_CONFIG_ARGS = tuple(arg for key, value in HARDENED_CONFIG for arg in ("-c", f"{key}={value}"))


@dataclass(frozen=True)
class HostGit:
    """git on one repository (`git_dir`), optionally with a work tree."""

    git_dir: Path
    work_tree: Path | None = None
    config: tuple[tuple[str, str], ...] = field(default=())
    """Settings on top of `HARDENED_CONFIG` (identity, an excludes file)."""

    def with_tree(self, work_tree: Path | None) -> HostGit:
        return replace(self, work_tree=work_tree)

    def with_config(self, *pairs: tuple[str, str]) -> HostGit:
        return replace(self, config=(*self.config, *pairs))

    def argv(self, *args: str) -> list[str]:
        argv = ["git", "--no-pager", *_CONFIG_ARGS]
        for key, value in self.config:
            argv += ["-c", f"{key}={value}"]
        argv.append(f"--git-dir={self.git_dir}")
        argv.append(f"--work-tree={self.work_tree}" if self.work_tree else "--bare")
        if args and args[0] in _RENDERING:
            return [*argv, args[0], *_RENDERING[args[0]], *args[1:]]
        return [*argv, *args]

    def completed(
        self,
        *args: str,
        input: bytes | None = None,
        timeout: float = 300.0,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[bytes]:
        """The finished process, whatever its exit code (a `GitFailed` if it never ran)."""
        cwd = self.work_tree or self.git_dir
        try:
            return subprocess.run(
                self.argv(*args),
                cwd=cwd,
                input=input,
                capture_output=True,
                timeout=timeout,
                env=git_env(env),
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise GitFailed(f"git {_name(args)} timed out after {timeout:.0f}s") from None
        except OSError as exc:
            raise GitFailed(f"git {_name(args)} could not run: {exc}") from None

    def raw(self, *args: str, input: bytes | None = None, timeout: float = 300.0,
            env: Mapping[str, str] | None = None) -> bytes:  # fmt: skip
        done = self.completed(*args, input=input, timeout=timeout, env=env)
        if done.returncode != 0:
            detail = done.stderr.decode("utf-8", "replace").strip().splitlines()
            raise GitFailed(
                f"git {_name(args)} failed: {detail[-1] if detail else f'exit {done.returncode}'}",
                returncode=done.returncode,
                stdout=done.stdout.decode("utf-8", "replace"),
            )
        return done.stdout

    def run(self, *args: str, timeout: float = 300.0, env: Mapping[str, str] | None = None,
            strip: bool = True) -> str:  # fmt: skip
        out = self.raw(*args, timeout=timeout, env=env).decode("utf-8", "replace")
        return out.strip() if strip else out

    def ok(self, *args: str, timeout: float = 60.0) -> bool:
        """Whether the command succeeds (`cat-file -e`, `rev-parse --verify`)."""
        return self.completed(*args, timeout=timeout).returncode == 0

    def export(self, commit: str, dest: Path, *, timeout: float = 600.0) -> None:
        """Write `commit`'s tree into the empty folder `dest`: no `.git`, no attributes.

        Blobs are written as stored (no filters, no end-of-line conversion, no
        export-ignore: the tree checked is the tree committed); symlinks are made last,
        so no file is ever written through one; gitlinks become empty folders.
        """
        listing = self.raw("ls-tree", "-r", "-z", "--full-tree", commit, timeout=timeout)
        entries: list[tuple[str, str, str]] = []
        for record in listing.split(b"\0"):
            if not record:
                continue
            meta, _, raw_path = record.partition(b"\t")
            mode, _kind, sha = meta.decode().split()
            path = raw_path.decode("utf-8", "surrogateescape")
            parts = path.split("/")
            if any(p in ("", ".", "..") or p.lower() == ".git" for p in parts):
                raise NestedRepository(f"{commit[:12]} holds an unsafe path {path!r}")
            entries.append((mode, sha, path))
        blobs = [e for e in entries if e[0] != "160000"]
        contents = self.iter_blobs([sha for _, sha, _ in blobs], timeout=timeout)
        links: list[tuple[Path, bytes]] = []
        for (mode, _sha, path), body in zip(blobs, contents, strict=True):
            target = dest / path
            if mode == "120000":
                links.append((target, body))
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
            fd = os.open(target, flags, 0o755 if mode == "100755" else 0o644)
            with os.fdopen(fd, "wb") as handle:
                handle.write(body)
        for mode, _sha, path in entries:
            if mode == "160000":
                (dest / path).mkdir(parents=True, exist_ok=True)
        for target, body in links:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(os.fsdecode(body))

    def blobs(self, shas: list[str], *, timeout: float = 300.0) -> list[bytes]:
        """Blob contents in order, from one `cat-file --batch` process."""
        return list(self.iter_blobs(shas, timeout=timeout))

    def iter_blobs(self, shas: list[str], *, timeout: float = 300.0) -> Iterator[bytes]:
        """Blob contents in order, one at a time (an export never holds the whole tree)."""
        if not shas:
            return
        proc = subprocess.Popen(
            self.argv("cat-file", "--batch"),
            cwd=self.git_dir,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=git_env(),
        )
        assert proc.stdin is not None and proc.stdout is not None
        stdin = proc.stdin

        def feed() -> None:
            try:
                stdin.write("".join(f"{sha}\n" for sha in shas).encode())
            except OSError:
                pass  # git ended early: the reader reports it
            finally:
                stdin.close()

        writer = threading.Thread(target=feed, daemon=True)
        writer.start()
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        try:
            for sha in shas:
                header = proc.stdout.readline().split()
                if len(header) != 3 or header[1] != b"blob":
                    raise GitFailed(f"git cat-file: no blob {sha[:12]}")
                body = proc.stdout.read(int(header[2]))
                proc.stdout.read(1)  # the newline after each object
                yield body
        finally:
            timer.cancel()
            proc.kill()
            proc.stdout.close()
            proc.wait()
            writer.join()


def _name(args: Iterable[str]) -> str:
    return next((a for a in args if not a.startswith("-")), "git")


def discover(path: Path) -> tuple[Path, Path | None]:
    """(git dir, top level or None when bare) of the repository at `path`.

    Only for the user's own repository, read once when a command starts and before any
    sandbox ran; a tree a sandbox could write is never discovered.
    """
    done = _rev_parse(path, "--absolute-git-dir", "--is-bare-repository")
    lines = done.stdout.split("\n")
    if done.returncode != 0 or len(lines) < 2:
        raise WorkspaceError(
            f"{path} is not a git repository", tip="run karma inside a git repository"
        )
    if lines[1] == "true":
        return Path(lines[0]), None
    top = _rev_parse(path, "--show-toplevel").stdout.strip()
    return Path(lines[0]), Path(top) if top else None


def _rev_parse(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            ["git", "--no-pager", *_CONFIG_ARGS, "rev-parse", *args],
            cwd=path,
            capture_output=True,
            text=True,
            timeout=60,
            env=git_env(),
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise GitFailed(f"git rev-parse could not run: {exc}") from None


def open_repo(path: Path) -> HostGit:
    """The user's repository at `path` (see `discover`), with its working tree."""
    git_dir, top = discover(path)
    return HostGit(git_dir, top)


def refuse_nested_git(root: Path, *, limit: int = SCAN_LIMIT) -> None:
    """Refuse a tree with any `.git` (folder, file or link) below `root`.

    Walks with `os.scandir` and never follows a symlink; `root`'s own `.git` (a
    worktree's pointer, never read: git gets `--git-dir`) is not looked at.
    """
    found: list[str] = []
    pending = [root]
    seen = 0
    while pending:
        folder = pending.pop()
        try:
            with os.scandir(folder) as it:
                for entry in it:
                    seen += 1
                    if entry.name.lower() == ".git":
                        if folder != root:
                            found.append(os.path.relpath(entry.path, root))
                        continue
                    if entry.is_dir(follow_symlinks=False):
                        pending.append(Path(entry.path))
        except OSError as exc:
            raise NestedRepository(
                f"cannot check {os.path.relpath(folder, root)} for nested repositories: "
                f"{exc.strerror}"
            ) from None
        if seen > limit:
            raise NestedRepository(f"the tree has more than {limit} entries; refusing to stage it")
    if found:
        shown = ", ".join(sorted(found)[:5]) + (" ..." if len(found) > 5 else "")
        raise NestedRepository(
            f"nested git repository in the change: {shown}; the host's git does not "
            "touch a tree with a .git below its root"
        )


def new_gitlinks(raw_diff: str) -> list[str]:
    """Paths a `diff --raw -z` output turns into gitlinks (mode 160000) that were not."""
    fields = raw_diff.split("\0")
    found = []
    i = 0
    while i < len(fields):
        meta = fields[i]
        if not meta.startswith(":"):
            i += 1
            continue
        parts = meta[1:].split()
        status = parts[4] if len(parts) > 4 else ""
        n_paths = 2 if status[:1] in ("R", "C") else 1
        paths = fields[i + 1 : i + 1 + n_paths]
        if len(parts) > 1 and parts[1] == "160000" and parts[0] != "160000" and paths:
            found.append(paths[-1])
        i += 1 + n_paths
    return found
