"""Stack images: `sandboxes/<stack>/Dockerfile` built on the base image, cached by content.

The tag is `karma/stack-<stack>:<hash>`, the hash covering the recipe folder (Dockerfile
and its helper files), the target project's dependency files (the stack's
`dependency_files` globs) and the base image, by name and by id. An image with that tag
is reused without building. A build runs on the host's network (`network_mode="host"`)
because installing dependencies needs the package index; the sandboxes built from the
image never get a network. The base image is `sandbox.base_image` (`KARMA_BASE_IMAGE`).
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections import deque
from collections.abc import Callable
from pathlib import Path

from karma.config import KarmaConfig
from karma.home import DataRoots
from karma.recipes import load_stacks
from karma.sandbox.docker import DockerBackend, engine_errors
from karma.sandbox.interface import ImageBuildError, ImageMissing

DEFAULT_DEPENDENCY_FILES = ("pyproject.toml", "requirements*.txt")
LOG_TAIL_LINES = 40


def _recipe(stack_name: str, data: DataRoots | None) -> tuple[Path, tuple[str, ...]]:
    """The stack's recipe folder and its dependency-file globs, from trusted roots only."""
    roots = data or DataRoots.trusted()
    stack = next((s for s in load_stacks(roots) if s.name == stack_name), None)
    folder = roots.path("sandboxes", stack.sandbox if stack else stack_name)
    if not (folder / "Dockerfile").is_file():
        raise ImageBuildError(f"no image recipe for stack {stack_name!r}: {folder}/Dockerfile")
    globs = stack.dependency_files if stack and stack.dependency_files else DEFAULT_DEPENDENCY_FILES
    return folder, globs


def dependency_files(repo: Path, globs: tuple[str, ...]) -> list[Path]:
    """The dependency files at the root of `repo`, sorted by name."""
    found = {path for glob in globs for path in repo.glob(glob) if path.is_file()}
    return sorted(found, key=lambda path: path.name)


def _digest(base: str, base_id: str, folder: Path, deps: list[Path]) -> str:
    digest = hashlib.sha256(f"base {base} {base_id}\n".encode())
    for label, path in [("recipe", p) for p in sorted(folder.rglob("*")) if p.is_file()] + [
        ("dep", p) for p in deps
    ]:
        name = path.relative_to(folder) if label == "recipe" else path.name
        digest.update(f"{label} {name} {path.stat().st_size}\n".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def ensure_image(
    stack_name: str,
    repo: Path,
    config: KarmaConfig,
    *,
    backend: DockerBackend | None = None,
    log: Callable[[str], None] | None = None,
    data: DataRoots | None = None,
) -> str:
    """The tag of the stack image for `repo`, built first when no cached one exists.

    `ImageMissing` when the base image is not on the engine, `SandboxUnavailable` when
    the engine is not reachable, `ImageBuildError` (with the log's tail) when the build
    fails.
    """
    backend = backend or DockerBackend()
    api = backend.client.api
    base = config.sandbox.base_image
    folder, globs = _recipe(stack_name, data)
    deps = dependency_files(repo, globs)
    if not backend.has_image(base):
        raise ImageMissing(
            f"base image {base} is not on this Docker engine",
            tip=f"`docker pull {base}`, or set sandbox.base_image / KARMA_BASE_IMAGE to an "
            "image you have (`karma setup` pulls or builds one)",
        )
    with engine_errors(base):
        base_id = str(api.inspect_image(base)["Id"])
    digest = _digest(base, base_id, folder, deps)
    tag = f"karma/stack-{stack_name}:{digest[:16]}"
    if backend.has_image(tag):
        return tag
    with tempfile.TemporaryDirectory(prefix="karma-image-") as scratch:
        context = Path(scratch)
        shutil.copytree(folder, context, dirs_exist_ok=True)
        (context / "deps").mkdir(exist_ok=True)
        for path in deps:
            shutil.copy2(path, context / "deps" / path.name)
        _build(api, context, tag, base, stack_name, digest, log)
    return tag


def _build(
    api: object,
    context: Path,
    tag: str,
    base: str,
    stack_name: str,
    digest: str,
    log: Callable[[str], None] | None,
) -> None:
    tail: deque[str] = deque(maxlen=LOG_TAIL_LINES)
    error: str | None = None
    with engine_errors(base):
        chunks = api.build(  # type: ignore[attr-defined]
            path=str(context),
            tag=tag,
            buildargs={"BASE_IMAGE": base},
            network_mode="host",
            labels={"karma.stack": stack_name, "karma.deps_hash": digest},
            rm=True,
            forcerm=True,
            pull=False,
            decode=True,
        )
        for chunk in chunks:
            for line in str(chunk.get("stream", "")).splitlines():
                tail.append(line)
                if log is not None:
                    log(line)
            if "error" in chunk:
                error = str(chunk["error"]).strip()
                tail.append(error)
    if error is not None:
        log_tail = "\n".join(tail)
        raise ImageBuildError(
            f"building {tag} from {context.name} failed: {error}\n{log_tail}",
            tip="fix the project's dependency files (the log above shows pip's complaint)",
        )
