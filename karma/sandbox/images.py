"""Stack images: `sandboxes/<stack>/Dockerfile` built on the base image, cached by content.

The tag is `karma/stack-<stack>:<hash>`, the hash covering the bytes that are built: the
recipe folder (Dockerfile and helper files), the target project's dependency files (the
stack's `dependency_files` globs), the base image by name and id, and the build mode. An
image with that tag is reused without building anything.

A build has two stages. Stage 1 (`karma.sandbox.wheelhouse`) downloads wheels of the
project's plain requirements (`karma.sandbox.requirements`: option lines, URLs, VCS and
paths dropped, and shown in the build log) in a throwaway container with the network.
Stage 2 is `docker build` with `network_mode="none"`: the recipe installs the wheels from
the context with `--no-index --require-hashes` against the lock of stage 1. So no code
from the repository runs with a network, and none of its options reaches pip.

The repository is untrusted: a dependency file or a recipe folder holding a symlink, or
anything but regular files, is refused; each is read once, with `O_NOFOLLOW`, size-bound,
and the bytes read are the bytes hashed and built. Every line of the build's output is
made inert (`karma.ci.inert_lines`) before it reaches `log`, so it cannot inject
workflow commands or terminal controls into a CI log.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from karma.config import KarmaConfig
from karma.home import DataRoots
from karma.layout import ROOT, in_folder
from karma.recipes import Stack, load_stacks
from karma.sandbox import npm, sandbox_user
from karma.sandbox.docker import DockerBackend
from karma.sandbox.engine import engine_errors
from karma.sandbox.interface import ImageBuildError, ImageMissing
from karma.sandbox.requirements import Requirements, sanitize
from karma.sandbox.toolchain import has_toolchain, toolchain_image
from karma.sandbox.wheelhouse import download
from karma.text.inert import inert_lines

DEFAULT_DEPENDENCY_FILES = ("pyproject.toml", "requirements*.txt")
TOOLS = ("pytest",)
"""Installed in every Python stack image, besides the project's requirements."""
LOG_TAIL_LINES = 40
DEPENDENCY_FILE_LIMIT = 1 << 20
RECIPE_LIMIT = 8 << 20
"""Bytes a recipe folder may hold (a build context is this, the lock and the wheels)."""
RECIPE_FILES = 256
DEPS_DIR = "karma-deps"
"""Where the context holds the wheels, the lock and the records (the recipe's COPY source)."""
SCHEME = "two-stage/2"  # 2: backends' editable requirements
"""Part of every tag: images built another way are never reused."""


@dataclass(frozen=True)
class Inputs:
    """What an image is built from, read once: the bytes hashed are the bytes built."""

    recipe: tuple[tuple[str, bytes], ...]
    """(path relative to the recipe folder, content)."""
    deps: tuple[tuple[str, bytes], ...]
    """(path relative to the project's folder, content): its root's dependency files, and
    an npm workspace's `package.json` as `packages/core/package.json`."""
    installer: Literal["pip", "npm", "none"] = "pip"
    """The stack's: how stage 1 fetches the dependencies (`none`: it has no stage 1)."""
    folder: str = ""
    """The stack's folder in the repository ("" at its root): where the sandbox mounts
    the workspaces an image links to (npm workspaces only; hashed only then)."""

    def requirements(self) -> Requirements:
        text = {name: data.decode("utf-8", "replace") for name, data in self.deps}
        return sanitize(text, extra=TOOLS)


def _stack(stack_name: str, roots: DataRoots) -> Stack | None:
    return next((s for s in load_stacks(roots) if s.name == stack_name), None)


def _recipe(stack_name: str, data: DataRoots | None) -> tuple[Path, tuple[str, ...]]:
    """The stack's recipe folder and its dependency-file globs, from trusted roots only."""
    roots = data or DataRoots.trusted()
    stack = _stack(stack_name, roots)
    folder = roots.path("sandboxes", stack.sandbox if stack else stack_name)
    if not (folder / "Dockerfile").is_file():
        raise ImageBuildError(f"no image recipe for stack {stack_name!r}: {folder}/Dockerfile")
    if stack and (stack.dependency_files or stack.installer != "pip"):
        return folder, stack.dependency_files
    return folder, DEFAULT_DEPENDENCY_FILES


def _read(path: Path, limit: int, what: str) -> bytes:
    """A regular file's bytes, never through a symlink, at most `limit` of them."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        raise ImageBuildError(f"{what} {path.name} refused: {exc.strerror} (a symlink?)") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ImageBuildError(f"{what} {path.name} refused: not a regular file")
        if info.st_size > limit:
            raise ImageBuildError(f"{what} {path.name} refused: larger than {limit >> 10} KiB")
        return handle.read(limit + 1)[:limit]


def dependency_files(repo: Path, globs: tuple[str, ...]) -> list[Path]:
    """The dependency files at the root of `repo`, sorted by name; symlinks refused."""
    found: set[Path] = set()
    for glob in globs:
        for path in repo.glob(glob):
            if path.parent != repo:
                continue
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                raise ImageBuildError(
                    f"dependency file {path.name} is a symlink: refused (it could point "
                    "at any file of this machine)",
                    tip="commit the file itself instead of a link",
                )
            if stat.S_ISREG(mode):
                found.add(path)
    return sorted(found, key=lambda path: path.name)


def _no_links_between(repo: Path, folder: Path) -> None:
    """A recipe override under the repository is not reached through a symlink."""
    try:
        relative = folder.relative_to(repo)
    except ValueError:
        return
    current = repo
    for part in relative.parts:
        current = current / part
        if current.is_symlink():
            raise ImageBuildError(f"recipe path {current} is a symlink: refused")


def recipe_files(folder: Path) -> tuple[tuple[str, bytes], ...]:
    """Every file of a recipe folder with its bytes; a symlink or special file is refused."""
    if folder.is_symlink():
        raise ImageBuildError(f"recipe folder {folder} is a symlink: refused")
    files: list[tuple[str, bytes]] = []
    total, pending = 0, [folder]
    while pending:
        current = pending.pop()
        with os.scandir(current) as entries:
            for entry in entries:
                relative = str(Path(entry.path).relative_to(folder))
                if entry.is_symlink():
                    raise ImageBuildError(f"recipe {folder.name}: {relative} is a symlink: refused")
                if relative == DEPS_DIR:
                    raise ImageBuildError(f"recipe {folder}: {DEPS_DIR} is a name KARMA writes")
                if entry.is_dir(follow_symlinks=False):
                    pending.append(Path(entry.path))
                    continue
                data = _read(Path(entry.path), RECIPE_LIMIT, f"recipe {folder.name}:")
                total += len(data)
                files.append((relative, data))
                if total > RECIPE_LIMIT or len(files) > RECIPE_FILES:
                    raise ImageBuildError(f"recipe {folder} is too large for a build context")
    return tuple(sorted(files))


def _digest(base: str, base_id: str, inputs: Inputs, allow_sdists: bool) -> str:
    digest = hashlib.sha256(f"{SCHEME} base {base} {base_id} sdists {allow_sdists}\n".encode())
    for label, items in (("recipe", inputs.recipe), ("dep", inputs.deps)):
        for name, data in items:
            digest.update(f"{label} {name} {len(data)}\n".encode())
            digest.update(data)
    if inputs.folder:
        digest.update(f"folder {inputs.folder}\n".encode())
    return digest.hexdigest()


def project_folder(repo: Path, folder: PurePosixPath) -> Path:
    """The folder of `repo` a stack is placed in (karma/layout.py), reached through no
    symlink: each step down is a plain directory, or the image build is refused."""
    current = repo
    for part in folder.parts:
        if part in ("..", "/") or "/" in part:
            raise ImageBuildError(f"stack folder {folder} refused: not inside the repository")
        current = current / part
        try:
            mode = current.lstat().st_mode
        except OSError as exc:
            raise ImageBuildError(f"stack folder {folder} refused: {exc.strerror}") from None
        if not stat.S_ISDIR(mode):
            raise ImageBuildError(
                f"stack folder {folder} refused: {current.name} is not a plain directory "
                "(a symlink?)"
            )
    return current


def read_inputs(stack_name: str, repo: Path, data: DataRoots | None = None, *,
                folder: PurePosixPath = ROOT) -> Inputs:  # fmt: skip
    """The recipe and dependency files an image of `stack_name` for `repo` is built from
    (those of its `folder`, when the stack is placed in one); recipes from `data`
    (default: trusted places and the user's checkout `repo`)."""
    roots = data or DataRoots.of_checkout(repo)
    recipe, globs = _recipe(stack_name, roots)
    stack = _stack(stack_name, roots)
    installer = stack.installer if stack else "pip"
    _no_links_between(repo, recipe)
    project = project_folder(repo, folder)
    deps = tuple(
        (path.name, _read(path, DEPENDENCY_FILE_LIMIT, "dependency file"))
        for path in dependency_files(project, globs)
    )
    if installer == "npm":
        deps += npm.workspace_manifests(project, dict(deps), DEPENDENCY_FILE_LIMIT)
    linked = folder != ROOT and any("/" in name for name, _ in deps)
    return Inputs(recipe_files(recipe), deps, installer, folder.as_posix() if linked else "")


def ensure_image(
    stack_name: str,
    repo: Path,
    config: KarmaConfig,
    *,
    backend: DockerBackend | None = None,
    log: Callable[[str], None] | None = None,
    data: DataRoots | None = None,
    environ: Mapping[str, str] | None = None,
    folder: PurePosixPath = ROOT,
) -> str:
    """The tag of the stack image for `repo` (its `folder`), built first when no cached
    one exists.

    `ImageMissing` when the base image is not on the engine, `SandboxUnavailable` when
    the engine is not reachable, `ImageBuildError` (with the log's tail) when the build
    fails or an input is refused. `environ` is where the user's pip index settings come
    from (default: this process's environment).
    """
    inputs = read_inputs(stack_name, repo, data, folder=folder)
    return image_for(stack_name, inputs, config, backend=backend, log=log, environ=environ)


def image_for(
    stack_name: str,
    inputs: Inputs,
    config: KarmaConfig,
    *,
    backend: DockerBackend | None = None,
    log: Callable[[str], None] | None = None,
    environ: Mapping[str, str] | None = None,
) -> str:
    """The tag of the stack image built from `inputs`, built first when none is cached
    (a worker builds on its own engine from the inputs the coordinator read)."""
    backend = backend or DockerBackend()
    api = backend.client.api
    base = config.sandbox.base_image
    if not backend.has_image(base):
        raise ImageMissing(
            f"base image {base} is not on this Docker engine",
            tip=f"`docker pull {base}`, or set sandbox.base_image / KARMA_BASE_IMAGE to an "
            "image you have (`karma setup` pulls or builds one)",
        )
    with engine_errors(base):
        base_id = str(api.inspect_image(base)["Id"])
    say = log or (lambda line: None)
    if inputs.installer == "npm":
        npm.check_lockfile(dict(inputs.deps))  # refused before anything is built
    if has_toolchain(inputs.recipe):  # the recipe builds on its toolchain (toolchain.py)
        with engine_errors(base):
            base_id = toolchain_image(api, base_id, stack_name, inputs.recipe, say)
    allow_sdists = config.sandbox.allow_sdists
    digest = _digest(base, base_id, inputs, allow_sdists)
    tag = f"karma/stack-{stack_name}:{digest[:16]}"
    if backend.has_image(tag):
        return tag
    labels = {"karma.stack": stack_name, "karma.deps_hash": digest}
    with tempfile.TemporaryDirectory(prefix="karma-image-") as scratch:
        context = Path(scratch) / "context"
        for relative, content in inputs.recipe:
            (context / relative).parent.mkdir(parents=True, exist_ok=True)
            (context / relative).write_bytes(content)
        fill = {"npm": _npm_deps, "pip": _pip_deps, "none": _no_deps}[inputs.installer]
        with engine_errors(base):
            labels |= fill(api, base_id, inputs, Path(scratch), context / DEPS_DIR, config,
                           environ=os.environ if environ is None else environ, say=say)  # fmt: skip
        workdir = in_folder(config.sandbox.workdir, PurePosixPath(inputs.folder or "."))
        args = {"KARMA_WORKDIR": workdir} if inputs.installer == "npm" else {}
        _build(api, context, tag, base_id, labels, say, args)
    return tag


def _pip_deps(api: Any, base_id: str, inputs: Inputs, scratch: Path, deps: Path,
              config: KarmaConfig, *, environ: Mapping[str, str],
              say: Callable[[str], None]) -> dict[str, str]:  # fmt: skip
    """Stage 1 for pip: the wheels and their hash-pinned lock, into `deps`."""
    allow_sdists = config.sandbox.allow_sdists
    requirements = inputs.requirements()
    for dropped in requirements.dropped:
        say(inert_lines(f"karma: {dropped.line()}"))
    staging = scratch / "download"
    (staging / "in").mkdir(parents=True)
    (staging / "in" / "requirements.txt").write_text(requirements.text())
    say(
        f"karma: stage 1: downloading {len(requirements.specifiers)} requirements "
        f"({'wheels and sdists' if allow_sdists else 'wheels only'})"
    )
    house = download(
        api,
        base_id,
        staging,
        user=sandbox_user(config),
        memory_mb=config.sandbox.memory_mb,
        allow_sdists=allow_sdists,
        environ=environ,
        log=say,
    )
    deps.mkdir()
    (staging / "wheels").rename(deps / "wheels")
    (deps / "requirements.in").write_text(requirements.text())
    (deps / "requirements.lock").write_text(house.lock)
    (deps / "dropped.txt").write_text("".join(f"{d.line()}\n" for d in requirements.dropped))
    say(
        f"karma: stage 2: installing {house.files} wheels ({house.bytes >> 10} KiB, lock "
        f"sha256 {house.lock_sha256[:16]}) with no network"
    )
    return {"karma.lock_sha256": house.lock_sha256}


def _npm_deps(api: Any, toolchain: str, inputs: Inputs, scratch: Path, deps: Path,
              config: KarmaConfig, *, environ: Mapping[str, str],
              say: Callable[[str], None]) -> dict[str, str]:  # fmt: skip
    """Stage 1 for Node (`karma.sandbox.npm.stage_one`)."""
    del environ  # the package manager's configuration is npm.NPM_ENV alone
    return npm.stage_one(api, toolchain, dict(inputs.deps), scratch, deps,
                         user=sandbox_user(config), memory_mb=config.sandbox.memory_mb,
                         say=say)  # fmt: skip


def _no_deps(api: Any, toolchain: str, inputs: Inputs, scratch: Path, deps: Path,
             config: KarmaConfig, *, environ: Mapping[str, str],
             say: Callable[[str], None]) -> dict[str, str]:  # fmt: skip
    """No stage 1: the stack's dependencies are vendored in the tree (Go's `vendor/`,
    Cargo's vendored sources), which only the sandbox reads; the context gets the
    dependency files alone, for the recipe to check with no network."""
    del api, toolchain, scratch, config, environ
    (deps / "project").mkdir(parents=True)
    for name, data in inputs.deps:
        (deps / "project" / name).write_bytes(data)
    say("karma: no download stage: dependencies come vendored in the tree, or not at all")
    return {}


def _build(
    api: Any,
    context: Path,
    tag: str,
    base: str,
    labels: dict[str, str],
    log: Callable[[str], None],
    args: Mapping[str, str] | None = None,
) -> None:
    tail: deque[str] = deque(maxlen=LOG_TAIL_LINES)
    error: str | None = None
    with engine_errors(base):
        chunks = api.build(
            path=str(context),
            tag=tag,
            buildargs={"BASE_IMAGE": base, **(args or {})},
            network_mode="none",
            labels=labels,
            rm=True,
            forcerm=True,
            pull=False,
            decode=True,
        )
        for chunk in chunks:
            for line in str(chunk.get("stream", "")).splitlines():
                line = inert_lines(line)
                tail.append(line)
                log(line)
            if "error" in chunk:
                error = inert_lines(str(chunk["error"]).strip())
                tail.append(error)
    if error is not None:
        log_tail = "\n".join(tail)
        raise ImageBuildError(
            f"building {tag} failed: {error}\n{log_tail}",
            tip="fix the project's dependency files (the log above shows pip's complaint)",
        )
