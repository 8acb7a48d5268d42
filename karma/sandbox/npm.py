"""The npm side of a Node stack image: the toolchain, the lockfile's rules, the download.

The package manager is the lockfile's (`manager_of`): `package-lock.json` is npm's,
else `pnpm-lock.yaml` pnpm's (`karma.sandbox.pnpmlock`), else `yarn.lock` yarn 1's
(`karma.sandbox.yarnlock`) or, when it is berry's YAML, yarn 4's
(`karma.sandbox.berrylock`), in that order when a project has several; none: npm, with
nothing to install. A `packageManager` field in package.json is not obeyed (the
toolchain has one version of each: Debian's npm and yarnpkg, a pinned pnpm and yarn 4).

A Node image (`sandboxes/node/`) is built in three steps, the only two with a network
running trusted code on trusted or checked input:

0. The toolchain (`karma.sandbox.toolchain`): `sandboxes/node/toolchain/Dockerfile`
   (Debian's `nodejs` and `npm` on the base image), built with the host's network. Its
   context is that recipe file alone (trusted data, `karma.home.DataRoots`): no byte of
   the project is in it. Cached by the base image's id and the recipe's bytes.
1. The download: `npm ci --ignore-scripts` (`pnpm install --frozen-lockfile`, `yarnpkg
   install --frozen-lockfile --ignore-scripts --no-default-rc`) in a throwaway container of the
   toolchain with the network, on a copy of the project's `package.json` and its lockfile
   only (never its `.npmrc`, `.yarnrc`, `.pnpmfile.cjs`, `pnpm-workspace.yaml`, nor any
   other file), with the tool's user and global configuration pointed at nothing and the
   registry set to the public one. It keeps the tool's cache (the tarballs, checked
   against the lockfile's `integrity`); the tree it installed is thrown away. The
   container has no capability, a read-only root, a non-root user, a tmpfs, and is
   stopped past the cache size limit or the timeout (`wheelhouse.watched`).
2. The install (`images._build`, no network): `npm ci --offline --ignore-scripts` (or
   pnpm's and yarn's `--offline` install) from that cache into `/node_modules`, where
   Node's resolution reaches from `/workspace`.

Trust: `package.json` and the lockfile are the target repository's, untrusted.
The host parses them as data only (JSON; YAML and yarn's v1 format in their modules),
never runs or obeys them: `check_lockfile` refuses a
lockfile that fetches anything but a tarball of the public npm registry (an `http://`, a
git, a `file:` or another host's URL), that links a local folder other than one of its
own workspaces, or that places a package outside `node_modules/`. Lifecycle scripts
(`preinstall`, `install`, `postinstall`, `prepare`, a dependency's) never run:
`--ignore-scripts` in both steps.

npm workspaces (a monorepo's packages, `"workspaces": ["packages/*"]` in the root
`package.json`): the lockfile names each workspace by its folder (`"packages/core": {...}`)
and links it (`"node_modules/core": {"link": true, "resolved": "packages/core"}`). A
workspace folder is a plain relative path (no `..`, no `node_modules`, no `.git`); each
one's `package.json` is read beside the root's (no symlink on the way, `read_inputs`),
and both steps get those manifests only, never a workspace's other files. A link to
anything but a workspace the lockfile lists, and a package npm installed inside a
workspace (`packages/core/node_modules/x`: a version it could not hoist), are refused.
The image's `/node_modules/<name>` of a workspace points at its folder in the sandbox's
mounted tree (`/workspace/packages/core`), so its code is the change's, as the root's is.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from collections.abc import Set as AbstractSet
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from karma.sandbox import SCRATCH, berrylock, jsworkspaces, pnpmlock, yarnlock
from karma.sandbox.interface import ImageBuildError
from karma.sandbox.wheelhouse import IN, WHEELHOUSE_LIMIT, start_download, watched

REGISTRY = "https://registry.npmjs.org/"
"""The one registry a lockfile may fetch from (and the one npm is pointed at)."""
MANIFEST = "package.json"
LOCKFILE = "package-lock.json"
CACHE = "/karma/npm-cache"
DEPENDENCY_KEYS = ("dependencies", "devDependencies", "optionalDependencies")
Manager = Literal["npm", "pnpm", "yarn", "berry"]
LOCKFILES: Mapping[Manager, str] = {
    "npm": LOCKFILE,
    "pnpm": pnpmlock.LOCKFILE,
    "yarn": yarnlock.LOCKFILE,
}
"""Each package manager's lockfile, in the order one is chosen when a project has several."""
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
    "npm_config_manage_package_manager_versions": "false",
    "npm_config_package_manager_strict": "false",
    "YARN_IGNORE_PATH": "1",
}
"""npm's whole configuration in the download container: nothing of a project's or a
user's `.npmrc` (npm would read `userconfig`/`globalconfig` otherwise)."""


DOWNLOAD: Mapping[Manager, str] = {
    "npm": "npm ci --ignore-scripts --no-audit --no-fund --loglevel=warn",
    "pnpm": f"pnpm install --frozen-lockfile --ignore-scripts --ignore-pnpmfile "
    f"--store-dir {CACHE} --registry {REGISTRY} --config.node-linker=hoisted "
    "--config.package-import-method=copy --config.manage-package-manager-versions=false "
    "--reporter=append-only",
    "yarn": f"yarnpkg install --frozen-lockfile --ignore-scripts --non-interactive "
    f"--no-default-rc --registry {REGISTRY} --cache-folder {CACHE} "
    f"--modules-folder {SCRATCH}/node_modules --network-timeout 300000",
    "berry": "env YARN_ENABLE_TELEMETRY=0 YARN_ENABLE_GLOBAL_CACHE=0 YARN_ENABLE_SCRIPTS=0 "
    f"YARN_NODE_LINKER=node-modules YARN_CACHE_FOLDER={CACHE} YARN_GLOBAL_FOLDER="
    f"{SCRATCH}/yarn-global YARN_NPM_REGISTRY_SERVER={REGISTRY.rstrip('/')} "
    "YARN_CHECKSUM_BEHAVIOR=throw YARN_ENABLE_PROGRESS_BARS=0 YARN_ENABLE_COLORS=0 "
    "yarn-berry install --immutable --mode=skip-build",
}
"""Each manager's download (its tree is thrown away; its cache is kept). yarn 4 is told
everything by its environment (no `.yarnrc.yml` is copied; HOME is the scratch folder):
the public registry, its own cache folder, no scripts, no telemetry, checksums that must
match the lockfile's."""


def _json(name: str, data: bytes) -> Any:
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ImageBuildError(f"{name} refused: not valid JSON ({exc})") from None


def manager_of(files: Mapping[str, bytes]) -> tuple[Manager, str | None]:
    """The package manager of a project's files and its lockfile (None: no lockfile)."""
    for manager, lockfile in LOCKFILES.items():
        if lockfile in files:
            if manager == "yarn" and berrylock.is_berry(files[lockfile]):
                return "berry", lockfile
            return manager, lockfile
    return "npm", None


def install_files(files: Mapping[str, bytes]) -> tuple[str, ...]:
    """The files the download and the install get: package.json, the lockfile and, for
    npm workspaces, each workspace's package.json (`folder/package.json`)."""
    lockfile = manager_of(files)[1]
    if lockfile is None:
        return (MANIFEST,)
    manifests = sorted(name for name in files if name.endswith(f"/{MANIFEST}"))
    return (MANIFEST, lockfile, *manifests)


def workspace_folders(files: Mapping[str, bytes]) -> tuple[str, ...]:
    """The folder of each workspace the project's lockfile lists (npm's `packages` keys
    outside node_modules/, pnpm's importers other than `.`; yarn 1's lockfile lists none:
    the folders of the manifests read for the root's `workspaces` patterns);
    `ImageBuildError` for one that is not a plain folder of the project
    (`jsworkspaces.plain_folder`)."""
    manager, lockfile = manager_of(files)
    if lockfile is None or manager == "berry":
        return ()
    if manager == "yarn":  # the manifests `read_inputs` found for the root's patterns
        return tuple(sorted(n.removesuffix(f"/{MANIFEST}") for n in files if "/" in n))
    if manager == "pnpm":
        return tuple(sorted(pnpmlock.workspaces(pnpmlock.load(files[lockfile]))))
    lock = _json(LOCKFILE, files[LOCKFILE])
    packages = lock.get("packages") if isinstance(lock, dict) else None
    return tuple(sorted(_workspaces(packages))) if isinstance(packages, dict) else ()


def _workspaces(packages: dict[str, Any]) -> set[str]:
    """The workspace folders of a lockfile's `packages` map (keys outside node_modules)."""
    found = set()
    for where in packages:
        where = str(where)
        if where == "" or where.startswith("node_modules/"):
            continue
        if "node_modules" in where.split("/"):
            raise ImageBuildError(
                f"{LOCKFILE} refused: {where}: a package installed inside a workspace (a "
                "version npm could not hoist to the root's node_modules/)",
                tip="align the workspaces' versions of it so that npm hoists one copy",
            )
        if not jsworkspaces.plain_folder(where):
            raise ImageBuildError(f"{LOCKFILE} refused: {where!r} is not a folder of the project")
        found.add(where)
    return found


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
    manager, lockfile = manager_of(files)
    if lockfile is None:
        if wanted:
            raise ImageBuildError(
                f"{MANIFEST} declares {', '.join(wanted)} but there is no lockfile "
                f"({', '.join(LOCKFILES.values())}): dependencies are installed from a "
                "lockfile only",
                tip="run `npm install --package-lock-only` and commit package-lock.json",
            )
        return 0
    if manager == "berry" and manifest.get("workspaces"):
        raise ImageBuildError(
            f"{MANIFEST} refused: `workspaces` with yarn 4 (npm's, pnpm's and yarn 1's "
            "workspaces only)"
        )
    if manager == "yarn":
        count = yarnlock.check(files[lockfile])
        jsworkspaces.links_file(workspace_folders(files), files)  # each manifest checked
        return count
    if manager == "berry":
        return berrylock.check(files[lockfile])
    if manager == "pnpm":
        count = pnpmlock.check(files[lockfile])
        jsworkspaces.links_file(workspace_folders(files), files)  # each manifest checked
        return count
    lock = _json(LOCKFILE, files[LOCKFILE])
    if not isinstance(lock, dict) or not isinstance(lock.get("packages"), dict):
        raise ImageBuildError(
            f"{LOCKFILE} refused: no `packages` map (lockfileVersion 2 or 3 is needed)",
            tip="regenerate it with npm 7 or later (`npm install --package-lock-only`)",
        )
    workspaces = _workspaces(lock["packages"])
    jsworkspaces.links_file(sorted(workspaces), files)  # each workspace's manifest checked
    count = 0
    for where, entry in lock["packages"].items():
        if where == "" or where in workspaces:
            continue
        if not isinstance(entry, dict):
            raise ImageBuildError(f"{LOCKFILE} refused: {where!r} is not an object")
        _check_entry(str(where), entry, workspaces)
        count += 0 if entry.get("inBundle") or entry.get("link") else 1
    return count


def _check_entry(
    where: str, entry: dict[str, Any], workspaces: AbstractSet[str] = frozenset()
) -> None:
    def refuse(reason: str) -> ImageBuildError:
        return ImageBuildError(
            f"{LOCKFILE} refused: {where}: {reason}",
            tip=f"packages come only from {REGISTRY}; regenerate the lockfile against it",
        )

    segments = where.split("/")
    if segments[0] != "node_modules" or ".." in segments or "" in segments:
        raise refuse("a package outside node_modules/ (a workspace or a local folder)")
    if entry.get("link"):
        if entry.get("resolved") in workspaces and len(segments) <= 3:
            return  # node_modules/<name> or node_modules/@scope/<name>: one of its workspaces
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


def download(
    api: Any,
    toolchain: str,
    folder: Path,
    manager: Manager,
    lockfile: str,
    *,
    user: str,
    memory_mb: int,
    log: Callable[[str], None],
) -> None:
    """Step 1: `manager`'s download on `folder/in` (package.json and the lockfile, the
    workspaces' manifests), keeping its cache (pnpm's store) in `folder/cache`."""
    cache = folder / "cache"
    cache.mkdir()
    script = (
        f"mkdir {SCRATCH}/project && cp -R {IN}/. {SCRATCH}/project/ && "
        f"cd {SCRATCH}/project && {DOWNLOAD[manager]}"
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
            f"downloading the {manager} packages failed (exit {code})\n{log_tail}",
            tip=f"check that {lockfile} matches package.json "
            f"(`{'yarn' if manager == 'berry' else manager} install`)",
        )


def workspace_manifests(
    project: Path, deps: Mapping[str, bytes], limit: int
) -> tuple[tuple[str, bytes], ...]:
    """Each workspace's `package.json`: the folders the lockfile lists, or yarn 1's root
    patterns expanded (`karma.sandbox.jsworkspaces`), read below `project` through no
    symlink."""
    if manager_of(deps)[0] == "yarn":  # yarn.lock names no workspace: the root's globs
        folders = jsworkspaces.expand(project, jsworkspaces.patterns(deps.get(MANIFEST, b"")))
    else:
        folders = workspace_folders(deps)
    return jsworkspaces.read_manifests(project, folders, limit)


def stage_one(
    api: Any,
    toolchain: str,
    files: Mapping[str, bytes],
    scratch: Path,
    deps: Path,
    *,
    user: str,
    memory_mb: int,
    say: Callable[[str], None],
) -> dict[str, str]:
    """Step 1 into the image context's `deps`: the lockfile checked; `project/` (what the
    install gets: `install_files`, and for pnpm workspaces KARMA's own
    `pnpm-workspace.yaml`), the workspaces' links file, and the package manager's cache
    filled from the public registry; the image's labels."""
    packages = check_lockfile(files)
    manager, lockfile = manager_of(files)
    project, staging = deps / "project", scratch / "download"
    workspaces = workspace_folders(files)
    given = {name: files[name] for name in install_files(files)}
    if manager == "pnpm" and workspaces:  # never the project's own (settings, hooks)
        given[pnpmlock.WORKSPACE] = pnpmlock.workspace_file(workspaces).encode()
    for name, data in given.items():
        for folder in (project, staging / "in"):
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(data)
    (deps / jsworkspaces.LINKS).write_text(jsworkspaces.links_file(workspaces, files))
    (deps / "npm-cache").mkdir()
    if packages:
        say(f"karma: stage 1: downloading {packages} {manager} packages from {REGISTRY}")
        download(api, toolchain, staging, manager, str(lockfile), user=user,
                 memory_mb=memory_mb, log=say)  # fmt: skip
        (deps / "npm-cache").rmdir()
        (staging / "cache").rename(deps / "npm-cache")
    say(f"karma: stage 2: installing {packages} {manager} packages with no network")
    lock = files.get(lockfile, b"") if lockfile else b""
    return {"karma.lock_sha256": hashlib.sha256(lock).hexdigest()}
