"""A stack's toolchain image: `sandboxes/<stack>/toolchain/Dockerfile`, built with the network.

Stacks whose compiler does not come with the base image (Node, Go, Rust) name it in a
toolchain recipe: Debian's packages on the base image, installed by apt with the host's
network. Its build context is that one Dockerfile (trusted data, `karma.home.DataRoots`):
no byte of the target project is in it, so nothing the project says runs with a network.
The image is tagged `karma/toolchain-<stack>:<hash>`, the hash covering the base image's
id and the Dockerfile's bytes, and built once: the stack image (`karma.sandbox.images`)
is built on it, with no network.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from collections.abc import Callable
from typing import Any

from karma.sandbox.interface import ImageBuildError
from karma.text.inert import inert_lines

TOOLCHAIN = "toolchain/Dockerfile"
"""The toolchain's recipe, inside the stack's recipe folder."""


def has_toolchain(recipe: tuple[tuple[str, bytes], ...]) -> bool:
    return TOOLCHAIN in dict(recipe)


def toolchain_tag(stack: str, base_id: str, dockerfile: bytes) -> str:
    """The tag of `stack`'s toolchain image: its recipe's bytes on that base image."""
    digest = hashlib.sha256(f"toolchain {base_id}\n".encode() + dockerfile).hexdigest()
    return f"karma/toolchain-{stack}:{digest[:16]}"


def toolchain_image(
    api: Any,
    base_id: str,
    stack: str,
    recipe: tuple[tuple[str, bytes], ...],
    log: Callable[[str], None],
) -> str:
    """The id of `stack`'s toolchain image, built with the network when not cached."""
    dockerfile = dict(recipe).get(TOOLCHAIN)
    if dockerfile is None:
        raise ImageBuildError(f"the {stack} recipe has no {TOOLCHAIN}")
    tag = toolchain_tag(stack, base_id, dockerfile)
    import docker.errors

    try:
        return str(api.inspect_image(tag)["Id"])
    except docker.errors.ImageNotFound:
        pass
    log(f"karma: stage 0: building the {stack} toolchain {tag} (Debian packages, host network)")
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
        raise ImageBuildError(f"building the {stack} toolchain failed: {error}",
                              tip="check that the machine's apt source is reachable")  # fmt: skip
    return str(api.inspect_image(tag)["Id"])
