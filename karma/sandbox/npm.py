"""The npm side of a Node stack image: the toolchain, the lockfile's rules, the download.

A Node image (`sandboxes/node/`) is built in three steps, the only two with a network
running trusted code on trusted or checked input:

0. The toolchain: `sandboxes/node/toolchain/Dockerfile` (Debian's `nodejs` and `npm` on
   the base image), built with the host's network. Its context is that recipe folder
   alone (trusted data, `karma.home.DataRoots`): no byte of the project is in it. Cached
   by the base image's id and the recipe's bytes.
1. The download: `npm ci --ignore-scripts` in a throwaway container of the toolchain with
   the network, on a copy of the project's `package.json` and `package-lock.json` only
   (never its `.npmrc`, nor any other file), with npm's user and global configuration
   pointed at nothing and the registry set to the public one. It keeps npm's cache (the
   tarballs, checked against the lockfile's `integrity`); the tree it installed is thrown
   away. The container has no capability, a read-only root, a non-root user, a tmpfs,
   and is stopped past the cache size limit or the timeout (`wheelhouse.watched`).
2. The install (`images._build`, no network): `npm ci --offline --ignore-scripts` from
   that cache into `/node_modules`, where Node's resolution reaches from `/workspace`.

Trust: `package.json` and `package-lock.json` are the target repository's, untrusted.
The host parses them as JSON only, never runs or obeys them: `check_lockfile` refuses a
lockfile that fetches anything but a tarball of the public npm registry (an `http://`, a
git, a `file:` or another host's URL), that links local folders, or that places a
package outside `node_modules/`. Lifecycle scripts (`preinstall`, `install`,
`postinstall`, `prepare`, a dependency's) never run: `--ignore-scripts` in both steps.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from karma.sandbox import SCRATCH
from karma.sandbox.interface import ImageBuildError
from karma.sandbox.wheelhouse import IN, WHEELHOUSE_LIMIT, start_download, watched
from karma.text.inert import inert_lines

REGISTRY = "https://registry.npmjs.org/"
"""The one registry a lockfile may fetch from (and the one npm is pointed at)."""
MANIFEST = "package.json"
LOCKFILE = "package-lock.json"
TOOLCHAIN = "toolchain/Dockerfile"
"""The toolchain's recipe, inside the stack's recipe folder."""
CACHE = "/karma/npm-cache"
DEPENDENCY_KEYS = ("dependencies", "devDependencies", "optionalDependencies")
NPM_ENV: Mapping[str, str] = {
    "HOME": SCRATCH,
    "npm_config_registry": REGISTRY,
    "npm_config_userconfig": f"{SCRATCH}/no-user-npmrc",
    "npm_config_globalconfig": f"{SCRATCH}/no-global-npmrc",
    "npm_config_ignore_scripts": "true",
    "npm_config_update_notifier": "false",
    "npm_config_audit": "false",
    "npm_config_fund": "false",
    "npm_config_cache": CACHE,
}
"""npm's whole configuration in the download container: nothing of a project's or a
user's `.npmrc` (npm would read `userconfig`/`globalconfig` otherwise)."""


def _json(name: str, data: bytes) -> Any:
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ImageBuildError(f"{name} refused: not valid JSON ({exc})") from None


def _registry_tarball(url: str) -> bool:
    parts = urlsplit(url)
    return (
        parts.scheme == "https"
        and parts.netloc == "registry.npmjs.org"
        and parts.path.startswith("/")
        and ".." not in parts.path.split("/")
        and parts.path.endswith(".tgz")
        and not parts.query
    )


def check_lockfile(files: Mapping[str, bytes]) -> int:
    """How many packages `package-lock.json` pins (0 without one), or `ImageBuildError`
    with the reason the project's npm files are refused (module docstring)."""
    if MANIFEST not in files:
        raise ImageBuildError(f"no {MANIFEST} at the project's root")
    manifest = _json(MANIFEST, files[MANIFEST])
    if not isinstance(manifest, dict):
        raise ImageBuildError(f"{MANIFEST} refused: not a JSON object")
    wanted = [key for key in DEPENDENCY_KEYS if manifest.get(key)]
    if LOCKFILE not in files:
        if wanted:
            raise ImageBuildError(
                f"{MANIFEST} declares {', '.join(wanted)} but there is no {LOCKFILE}: "
                "dependencies are installed from a lockfile only",
                tip="run `npm install --package-lock-only` and commit package-lock.json",
            )
        return 0
    lock = _json(LOCKFILE, files[LOCKFILE])
    if not isinstance(lock, dict) or not isinstance(lock.get("packages"), dict):
        raise ImageBuildError(
            f"{LOCKFILE} refused: no `packages` map (lockfileVersion 2 or 3 is needed)",
            tip="regenerate it with npm 7 or later (`npm install --package-lock-only`)",
        )
    count = 0
    for where, entry in lock["packages"].items():
        if where == "":
            continue
        if not isinstance(entry, dict):
            raise ImageBuildError(f"{LOCKFILE} refused: {where!r} is not an object")
        _check_entry(str(where), entry)
        count += 0 if entry.get("inBundle") else 1
    return count


def _check_entry(where: str, entry: dict[str, Any]) -> None:
    def refuse(reason: str) -> ImageBuildError:
        return ImageBuildError(
            f"{LOCKFILE} refused: {where}: {reason}",
            tip=f"packages come only from {REGISTRY}; regenerate the lockfile against it",
        )

    segments = where.split("/")
    if segments[0] != "node_modules" or ".." in segments or "" in segments:
        raise refuse("a package outside node_modules/ (a workspace or a local folder)")
    if entry.get("link"):
        raise refuse(f"a link to the local folder {str(entry.get('resolved'))[:120]!r}")
    if entry.get("inBundle"):
        return  # inside its parent's tarball, which is checked
    resolved = entry.get("resolved")
    if not isinstance(resolved, str):
        raise refuse("no `resolved` URL")
    if not _registry_tarball(resolved):
        raise refuse(f"resolved to {resolved[:160]!r}, not a tarball of {REGISTRY}")
    integrity = entry.get("integrity")
    if not isinstance(integrity, str) or not integrity.startswith(("sha512-", "sha384-")):
        raise refuse("no sha512 `integrity` to check the tarball against")


def toolchain_tag(sandbox: str, base_id: str, dockerfile: bytes) -> str:
    """The tag of a stack's toolchain image: its recipe's bytes on that base image."""
    digest = hashlib.sha256(f"toolchain {base_id}\n".encode() + dockerfile).hexdigest()
    return f"karma/toolchain-{sandbox}:{digest[:16]}"


def toolchain_image(
    api: Any, base_id: str, recipe: tuple[tuple[str, bytes], ...], log: Callable[[str], None]
) -> str:
    """The id of the toolchain image (step 0), built with the network when not cached."""
    dockerfile = dict(recipe).get(TOOLCHAIN)
    if dockerfile is None:
        raise ImageBuildError(f"the node recipe has no {TOOLCHAIN}")
    tag = toolchain_tag("node", base_id, dockerfile)
    import docker.errors

    try:
        return str(api.inspect_image(tag)["Id"])
    except docker.errors.ImageNotFound:
        pass
    log(f"karma: stage 0: building the Node toolchain {tag} (Debian nodejs, npm)")
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(dockerfile)
        tar.addfile(info, io.BytesIO(dockerfile))
    context.seek(0)
    error = None
    for chunk in api.build(
        fileobj=context, custom_context=True, tag=tag, buildargs={"BASE_IMAGE": base_id},
        network_mode="host", rm=True, forcerm=True, pull=False, decode=True,
    ):  # fmt: skip
        for line in str(chunk.get("stream", "")).splitlines():
            log(inert_lines(line))
        if "error" in chunk:
            error = inert_lines(str(chunk["error"]).strip())
    if error is not None:
        raise ImageBuildError(f"building the Node toolchain failed: {error}",
                              tip="check that the machine's apt source is reachable")  # fmt: skip
    return str(api.inspect_image(tag)["Id"])


def download(
    api: Any,
    toolchain: str,
    folder: Path,
    *,
    user: str,
    memory_mb: int,
    log: Callable[[str], None],
) -> None:
    """Step 1: `npm ci --ignore-scripts` on `folder/in` (the two npm files), keeping npm's
    cache in `folder/cache`."""
    cache = folder / "cache"
    cache.mkdir()
    script = (
        f"mkdir {SCRATCH}/project && cp {IN}/{MANIFEST} {IN}/{LOCKFILE} {SCRATCH}/project/ && "
        f"cd {SCRATCH}/project && npm ci --ignore-scripts --no-audit --no-fund --loglevel=warn"
    )
    created = start_download(api, toolchain, ["sh", "-c", script], inputs=folder / "in",
                             out=cache, out_at=CACHE, user=user, memory_mb=memory_mb,
                             environment=NPM_ENV, stage="npm-download")  # fmt: skip
    code, tail, stopped = watched(api, created, cache, WHEELHOUSE_LIMIT, log, what="npm's cache")
    if stopped:
        raise ImageBuildError(f"the npm download was stopped: {stopped[0]}",
                              tip="trim the project's dependencies")  # fmt: skip
    if code != 0:
        log_tail = "\n".join(tail)
        raise ImageBuildError(
            f"downloading the npm packages failed (npm ci exit {code})\n{log_tail}",
            tip="check that package-lock.json matches package.json (`npm install`)",
        )
