"""Stage 1 of a stack image: the wheels of the sanitized requirements, downloaded.

The download runs in a throwaway container of the base image, the only step of a build
with a network (the host's: a bridge network may not route here). It runs trusted code
only, pip, on input that is plain specifiers (`karma.sandbox.requirements`), wheels only
(`--only-binary=:all:`), so no `setup.py` runs with the network. The container has no
capability, a read-only root, a tmpfs at /tmp, a non-root user, memory and pids limits,
and an environment of its own: HOME and the user's index settings, nothing else of the
host's. It reads the requirements from a read-only mount and writes the wheels to a host
folder whose size is watched (past `WHEELHOUSE_LIMIT` the download is stopped).

`sandbox.allow_sdists` (the user's own configuration) switches to `pip wheel
--prefer-binary`: sdists are built, in that same container, with the network. Either
way the folder then holds wheels only; each file's sha256 goes into a hash-pinned lock
(`name==version --hash=sha256:...`) that the offline install stage checks.

The index settings are trusted because they are the user's: `PIP_INDEX_URL`,
`PIP_EXTRA_INDEX_URL`, `PIP_TRUSTED_HOST` from the environment, else `index-url`,
`extra-index-url`, `trusted-host` of the user's and the machine's pip configuration
files. Only http(s) indexes are used (a `file://` one is a host path the container
cannot see).
"""

from __future__ import annotations

import configparser
import contextlib
import hashlib
import os
import re
import stat
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.utils import InvalidWheelFilename, parse_wheel_filename

from karma.sandbox import SCRATCH
from karma.sandbox.interface import ImageBuildError
from karma.sandbox.lending import user_ids
from karma.text.inert import inert_lines

WHEELHOUSE_LIMIT = 8 << 30
"""Bytes the downloaded wheels may take on the host; past it the download is stopped."""
DOWNLOAD_TIMEOUT_S = 1800.0
IN = "/karma/in"
OUT = "/karma/wheels"
LABEL_STAGE = "karma.image_stage"
PIP_KEYS = {
    "index-url": "PIP_INDEX_URL",
    "extra-index-url": "PIP_EXTRA_INDEX_URL",
    "trusted-host": "PIP_TRUSTED_HOST",
}
_NO_WHEEL = re.compile(
    r"No matching distribution found for ([^\s;]+)|"
    r"Could not find a version that satisfies the requirement ([^\s;]+)"
)


@dataclass(frozen=True)
class Wheelhouse:
    lock: str
    """The hash-pinned requirements of every wheel, one `name==version --hash=...` each."""
    files: int
    bytes: int

    @property
    def lock_sha256(self) -> str:
        return hashlib.sha256(self.lock.encode()).hexdigest()


def _config_files(environ: Mapping[str, str]) -> list[Path]:
    """pip's configuration files, machine then user (later ones win), as pip reads them."""
    home = Path(environ.get("HOME") or Path.home())
    xdg = Path(environ.get("XDG_CONFIG_HOME") or home / ".config")
    files = [
        Path("/etc/xdg/pip/pip.conf"),
        Path("/etc/pip.conf"),
        home / ".pip" / "pip.conf",
        xdg / "pip" / "pip.conf",
    ]
    if chosen := environ.get("PIP_CONFIG_FILE"):
        files = [] if chosen == os.devnull else [*files, Path(chosen)]
    return files


def index_env(environ: Mapping[str, str], log: Callable[[str], None]) -> dict[str, str]:
    """The user's index settings as pip environment variables, http(s) only."""
    values: dict[str, str] = {}
    for path in _config_files(environ):
        parser = configparser.ConfigParser(interpolation=None)
        try:
            parser.read(path, encoding="utf-8")
        except (configparser.Error, OSError, UnicodeDecodeError):
            continue
        for section in ("global", "download"):
            for key, var in PIP_KEYS.items():
                if parser.has_option(section, key):
                    values[var] = parser.get(section, key)
    values |= {var: environ[var] for var in PIP_KEYS.values() if var in environ}
    env = {}
    for var, value in values.items():
        kept = (
            value.split()
            if var == "PIP_TRUSTED_HOST"
            else [url for url in value.split() if url.lower().startswith(("http://", "https://"))]
        )
        for url in set(value.split()) - set(kept):
            log(f"karma: pip setting {var} {url.split('@')[-1]} not used: not an http(s) index")
        if kept:
            env[var] = " ".join(kept)
    return env


def _size(folder: Path) -> int:
    """Bytes of the files under `folder` (npm's cache nests), never through a symlink."""
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(FileNotFoundError):  # npm moves its temporary files
                total += (Path(root) / name).lstat().st_size
    return total


def _hash(path: Path) -> str:
    digest = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def lock_of(folder: Path) -> Wheelhouse:
    """The hash-pinned lock of the wheels in `folder`; anything but a wheel is refused."""
    lines, total = [], 0
    with os.scandir(folder) as entries:
        found = sorted(entries, key=lambda e: e.name)
    for entry in found:
        mode = entry.stat(follow_symlinks=False).st_mode
        if not stat.S_ISREG(mode):
            raise ImageBuildError(f"the download left {entry.name!r}, which is not a file")
        try:
            name, version, _, _ = parse_wheel_filename(entry.name)
        except InvalidWheelFilename:
            raise ImageBuildError(f"the download left {entry.name!r}, not a wheel") from None
        total += entry.stat(follow_symlinks=False).st_size
        lines.append(f"# {entry.name}\n{name}=={version} --hash=sha256:{_hash(Path(entry.path))}\n")
    return Wheelhouse("".join(lines), len(lines), total)


def _command(allow_sdists: bool) -> list[str]:
    pip = ["python3", "-m", "pip"]
    common = [
        "--no-cache-dir",
        "--progress-bar",
        "off",
        "--disable-pip-version-check",
        "-r",
        f"{IN}/requirements.txt",
    ]
    if allow_sdists:
        return [*pip, "wheel", "--prefer-binary", "--wheel-dir", OUT, *common]
    return [*pip, "download", "--only-binary=:all:", "--dest", OUT, *common]


def _failure(tail: list[str], code: int, allow_sdists: bool) -> ImageBuildError:
    log_tail = "\n".join(tail)
    names = [a or b for line in tail for a, b in _NO_WHEEL.findall(line)]
    if names and not allow_sdists:
        return ImageBuildError(
            f"no wheel of {names[-1]} on the index for the base image's Python: sdists are "
            f"not built, since their setup.py would run with the network\n{log_tail}",
            tip="pin a version that has a wheel, or set sandbox.allow_sdists = true in your "
            "own config (KARMA_HOME or --config) to build sdists in the download container",
        )
    if names:
        return ImageBuildError(
            f"{names[-1]} is not on the index\n{log_tail}", tip="fix the project's dependency files"
        )
    return ImageBuildError(
        f"downloading the dependencies failed (pip exit {code})\n{log_tail}",
        tip="fix the project's dependency files (pip's complaint is above)",
    )


def start_download(api: Any, image: str, command: list[str], *, inputs: Path, out: Path,
                   out_at: str, user: str, memory_mb: int, environment: Mapping[str, str],
                   stage: str) -> str:  # fmt: skip
    """The container of a download stage, created (not started): the network, and
    nothing else — the inputs read-only at `IN`, `out` the one writable folder (at
    `out_at`, given to the container user), no capability, a read-only root, bounded
    memory and pids. Its id."""
    if os.getuid() == 0:  # the container user must be able to write `out`
        os.chown(out, *user_ids(user))
    host_config = api.create_host_config(
        binds={str(inputs): {"bind": IN, "mode": "ro"}, str(out): {"bind": out_at, "mode": "rw"}},
        network_mode="host",
        cap_drop=["ALL"],
        security_opt=["no-new-privileges"],
        read_only=True,
        tmpfs={SCRATCH: "rw,nosuid,nodev,size=4096m,mode=1777"},
        mem_limit=f"{memory_mb}m",
        memswap_limit=f"{memory_mb}m",
        pids_limit=256,
        init=True,
    )
    created = api.create_container(
        image, command=command, user=user, working_dir=SCRATCH,
        environment=dict(environment), labels={LABEL_STAGE: stage}, host_config=host_config,
    )  # fmt: skip
    return str(created["Id"])


def download(
    api: Any,
    base_id: str,
    folder: Path,
    *,
    user: str,
    memory_mb: int,
    allow_sdists: bool,
    environ: Mapping[str, str],
    log: Callable[[str], None],
    limit: int = WHEELHOUSE_LIMIT,
) -> Wheelhouse:
    """Download the wheels of `folder/in/requirements.txt` into `folder/wheels`."""
    wheels = folder / "wheels"
    wheels.mkdir()
    env = {
        "HOME": SCRATCH,
        "PYTHONDONTWRITEBYTECODE": "1",
        "PIP_NO_INPUT": "1",
        **index_env(environ, log),
    }
    created = start_download(api, base_id, _command(allow_sdists), inputs=folder / "in",
                             out=wheels, out_at=OUT, user=user, memory_mb=memory_mb,
                             environment=env, stage="download")  # fmt: skip
    code, tail, stopped = watched(api, created, wheels, limit, log, what="the wheels")
    if stopped:
        raise ImageBuildError(
            f"the dependency download was stopped: {stopped[0]}",
            tip="trim the project's dependencies",
        )
    if code != 0:
        raise _failure(tail, code, allow_sdists)
    return lock_of(wheels)


def watched(
    api: Any, container: str, folder: Path, limit: int, log: Callable[[str], None], *, what: str
) -> tuple[int, list[str], list[str]]:
    """Run a created download container to its end, removed after: its exit code, the
    tail of its output, and why it was stopped (`what`, the folder it fills, passed
    `limit` bytes, or the timeout); empty when it was not."""
    stopped: list[str] = []
    try:
        api.start(container)
        done = threading.Event()
        watcher = threading.Thread(
            target=_watch, args=(api, container, folder, limit, done, stopped, what), daemon=True
        )
        watcher.start()
        tail = follow(api.logs(container, stream=True, follow=True), log)
        code = int(api.wait(container).get("StatusCode", 1))
        done.set()
        if not stopped and _size(folder) > limit:  # finished between two looks
            stopped.append(f"{what} passed {limit >> 20} MiB")
    finally:
        api.remove_container(container, force=True)
    return code, tail, stopped


def _watch(
    api: Any,
    container: str,
    folder: Path,
    limit: int,
    done: threading.Event,
    stopped: list[str],
    what: str,
) -> None:
    """Stop the download past the size limit or the timeout."""
    deadline = time.monotonic() + DOWNLOAD_TIMEOUT_S
    while not done.wait(1.0):
        if _size(folder) > limit:
            stopped.append(f"{what} passed {limit >> 20} MiB")
        elif time.monotonic() > deadline:
            stopped.append(f"it ran past {DOWNLOAD_TIMEOUT_S:.0f} s")
        else:
            continue
        import docker.errors

        with contextlib.suppress(docker.errors.APIError):  # it ended meanwhile
            api.kill(container)
        return


def follow(chunks: Any, log: Callable[[str], None], keep: int = 40) -> list[str]:
    """Each line of the container's output, made inert, to `log`; the last `keep` lines."""
    tail: list[str] = []
    pending = b""
    for chunk in chunks:
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for raw in lines:
            line = inert_lines(raw.decode("utf-8", "replace"))
            log(line)
            tail = [*tail[-(keep - 1) :], line]
    if pending:
        line = inert_lines(pending.decode("utf-8", "replace"))
        log(line)
        tail.append(line)
    return tail
