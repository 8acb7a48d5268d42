"""The Docker engine as the sandbox seam sees it: a client of `DOCKER_HOST` (or the
default socket), and docker-py's and requests' errors turned into KARMA's own."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, NoReturn

from karma.sandbox.interface import ImageMissing, SandboxError, SandboxUnavailable

START_TIP = "run `karma setup` (as root it installs and starts Docker), or start Docker yourself"


def _unavailable(exc: BaseException) -> NoReturn:
    raise SandboxUnavailable(f"Docker engine unreachable: {exc}", tip=START_TIP) from exc


@contextlib.contextmanager
def engine_errors(image: str | None = None) -> Iterator[None]:
    """Turn docker-py's and requests' errors into the seam's `SandboxError`s."""
    import docker.errors
    import requests.exceptions

    try:
        yield
    except docker.errors.ImageNotFound as exc:
        raise ImageMissing(
            f"image {image or '?'} is not on this Docker engine",
            tip=f"`karma setup` for the base image, `docker pull {image}`"
            ", or let `karma build` build the stack image",
        ) from exc
    except docker.errors.APIError as exc:
        raise SandboxError(f"Docker engine error: {exc.explanation or exc}") from exc
    except (requests.exceptions.ConnectionError, docker.errors.DockerException) as exc:
        _unavailable(exc)
    except (ConnectionError, FileNotFoundError) as exc:
        _unavailable(exc)


def client_of(timeout_s: float = 60.0) -> Any:
    import docker

    with engine_errors():
        return docker.from_env(timeout=int(timeout_s))
