"""Which stacks' toolchains this machine has (`karma doctor`): one line per stack recipe.

A stack whose recipe has a toolchain stage (`sandboxes/<sandbox>/toolchain/Dockerfile`,
Debian's packages on the base image: Node's) is `ready` when that image is on the
engine, `buildable` when the base image is there to build it on (the first build that
needs it fetches the packages with the network), and `unavailable` otherwise, as is any
stack when the base image is missing (every stack image starts from it). A stack with no
toolchain stage (Python's: the base image's interpreter) is ready with the base image.

Trust: the recipes come from the trusted data roots only (`karma.home.DataRoots`); the
engine is asked by tag, nothing is built or pulled.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from karma.errors import KarmaError
from karma.home import DataRoots

Availability = Literal["ready", "buildable", "unavailable"]
TOOLCHAIN = "toolchain/Dockerfile"


@dataclass(frozen=True)
class StackToolchain:
    name: str
    status: Availability
    image: str
    """The toolchain image's tag, or the base image for a stack with no toolchain stage."""
    detail: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def toolchains(base: str, roots: DataRoots | None = None) -> list[StackToolchain]:
    """Each stack of `recipes/stacks/` and whether its toolchain is here (module docstring);
    an empty list when the Docker engine cannot be asked."""
    from karma.recipes import load_stacks
    from karma.sandbox.docker import DockerBackend
    from karma.sandbox.toolchain import toolchain_tag

    roots = roots or DataRoots.trusted()
    try:
        backend = DockerBackend()
        base_id = str(backend.client.api.inspect_image(base)["Id"]) if backend.has_image(base) \
            else None  # fmt: skip
        stacks = load_stacks(roots)
    except KarmaError:
        return []
    out = []
    for stack in stacks:
        folder = roots.path("sandboxes", stack.sandbox)
        recipe = folder / TOOLCHAIN
        if not (folder / "Dockerfile").is_file():
            out.append(
                StackToolchain(
                    stack.name, "unavailable", "", f"no image recipe {folder}/Dockerfile"
                )
            )
            continue
        if not recipe.is_file():
            status: Availability = "ready" if base_id else "unavailable"
            why = "builds on the base image" + ("" if base_id else f" {base}, which is missing")
            out.append(StackToolchain(stack.name, status, base, why))
            continue
        if base_id is None:
            out.append(
                StackToolchain(
                    stack.name,
                    "unavailable",
                    "",
                    f"its toolchain builds on the base image {base}, which is missing",
                )
            )
            continue
        tag = toolchain_tag(stack.name, base_id, recipe.read_bytes())
        try:
            present = backend.has_image(tag)
        except KarmaError as exc:
            out.append(StackToolchain(stack.name, "unavailable", tag, str(exc)))
            continue
        out.append(StackToolchain(stack.name, "ready", tag, "toolchain image present") if present
                   else StackToolchain(stack.name, "buildable", tag, "toolchain image not built "
                                       "yet: the first build of this stack makes it (Debian "
                                       "packages, with the network)"))  # fmt: skip
    return out
