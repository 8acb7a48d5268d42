"""The sandboxes' base image when no registry has one: read the apt sources, debootstrap, import.

`karma setup` first uses the configured image (`sandbox.base_image`) or pulls it; where no
registry can be reached it builds `karma/base:<suite>` here. The root file system comes
from this machine's own apt source (the first `deb` entry of `/etc/apt/sources.list.d/
*.sources` or `/etc/apt/sources.list`, with its components and its `Signed-By` keyring),
so it needs nothing the machine does not already trust. It carries the host's CA bundle,
so an image build on the host's network (`sandbox.images`) can reach the package index
through a TLS-inspecting proxy, and is imported into the engine with a `karma.setup`
label that says where it came from.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from karma.errors import EnvironmentProblem
from karma.sandbox.docker import DockerBackend
from karma.sandbox.engine import engine_errors

LOCAL_REPOSITORY = "karma/base"
SETUP_LABEL = "karma.setup"
PACKAGES = ("python3", "python3-venv", "python3-pip", "git", "ca-certificates")
CA_BUNDLES = (Path("/etc/ssl/certs/ca-certificates.crt"), Path("/etc/pki/tls/certs/ca-bundle.crt"))
IMAGE_CA = "/etc/ssl/certs/ca-certificates.crt"
DEBOOTSTRAP_TIMEOUT_S = 1800.0
PULL_TIMEOUT_S = 120
"""Seconds docker may stay silent during a pull; no registry fails at once (DNS)."""


@dataclass(frozen=True)
class AptSource:
    """One `deb` line (or deb822 stanza, one suite) of the machine's apt configuration."""

    uri: str
    suite: str
    components: tuple[str, ...]
    keyring: Path | None = None


def apt_sources(etc_apt: Path = Path("/etc/apt")) -> list[AptSource]:
    """The `deb` sources apt uses, in apt's order (`sources.list`, then `sources.list.d/`)."""
    found = []
    one_line = [etc_apt / "sources.list", *sorted((etc_apt / "sources.list.d").glob("*.list"))]
    for path in one_line:
        if path.is_file():
            found += _one_line(path.read_text(encoding="utf-8", errors="replace"))
    for path in sorted((etc_apt / "sources.list.d").glob("*.sources")):
        found += _deb822(path.read_text(encoding="utf-8", errors="replace"))
    return found


def _one_line(text: str) -> list[AptSource]:
    sources = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        keyring = None
        if match := re.match(r"deb\s+\[([^\]]*)\]\s*", line):  # deb [signed-by=... arch=...] uri
            for option in match.group(1).split():
                key, _, value = option.partition("=")
                if key == "signed-by" and value.startswith("/"):
                    keyring = Path(value)
            line = "deb " + line[match.end() :]
        fields = line.split()
        if len(fields) >= 3 and fields[0] == "deb":
            sources.append(AptSource(fields[1], fields[2], tuple(fields[3:]) or ("main",), keyring))
    return sources


def _deb822(text: str) -> list[AptSource]:
    sources = []
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line.startswith("#") or ":" not in line or line[:1].isspace():
                continue
            key, _, value = line.partition(":")
            fields[key.strip().lower()] = value.strip()
        if "deb" not in fields.get("types", "").split() or fields.get("enabled") == "no":
            continue
        signed_by = fields.get("signed-by", "")
        keyring = Path(signed_by) if signed_by.startswith("/") else None
        components = tuple(fields.get("components", "main").split())
        for uri in fields.get("uris", "").split():
            for suite in fields.get("suites", "").split():
                sources.append(AptSource(uri, suite, components, keyring))
    return sources


def primary_source(sources: list[AptSource]) -> AptSource | None:
    """The machine's main distribution: its first source that is not security, updates or
    backports (`bookworm`, not `bookworm-security`); None on a machine without apt."""
    return next((s for s in sources if "-" not in s.suite and "/" not in s.suite), None)


NO_SOURCE_TIP = (
    "add your distribution's mirror to /etc/apt/sources.list, or set sandbox.base_image / "
    "KARMA_BASE_IMAGE to an image you have"
)


def local_image(suite: str) -> str:
    return f"{LOCAL_REPOSITORY}:{suite}"


def suite_of(image: str) -> str | None:
    """`bookworm` for `karma/base:bookworm`; None for an image `karma setup` does not build."""
    repository, _, tag = image.partition(":")
    return tag if repository == LOCAL_REPOSITORY and re.fullmatch(r"[a-z]+", tag) else None


def pull(image: str) -> str | None:
    """Pull `image`; None when it arrived, else why not (no registry fails in a moment)."""
    import docker
    import docker.errors
    from docker.utils import parse_repository_tag

    repository, tag = parse_repository_tag(image)
    with engine_errors(image):
        client = docker.from_env(timeout=PULL_TIMEOUT_S)
    try:
        for chunk in client.api.pull(repository, tag or "latest", stream=True, decode=True):
            if "error" in chunk:
                return str(chunk["error"]).strip()
    except docker.errors.APIError as exc:
        return str(exc.explanation or exc)
    except (OSError, docker.errors.DockerException) as exc:  # the read timed out
        return str(exc)
    finally:
        client.close()
    return None


def build(
    backend: DockerBackend,
    image: str,
    source: AptSource,
    *,
    log_file: Path,
    say: Callable[[str], None],
) -> None:
    """Debootstrap `image`'s suite from `source` and import it as `image`."""
    suite = suite_of(image)
    debootstrap = shutil.which("debootstrap")
    if suite is None or debootstrap is None:
        raise EnvironmentProblem(f"cannot build {image} here (debootstrap: {debootstrap})")
    bundle = next((path for path in CA_BUNDLES if path.is_file()), None)
    say(f"base image: building {image} with debootstrap from {source.uri} (log {log_file})")
    root = Path(tempfile.mkdtemp(prefix="karma-base-"))
    try:
        command = [debootstrap, "--variant=minbase", f"--include={','.join(PACKAGES)}",
                   f"--components={','.join(source.components)}"]  # fmt: skip
        if source.keyring is not None and source.keyring.is_file():
            command.append(f"--keyring={source.keyring}")
        command += [suite, str(root), source.uri]
        with log_file.open("ab") as log:
            try:
                done = subprocess.run(command, stdin=subprocess.DEVNULL, stdout=log,
                                      stderr=subprocess.STDOUT, timeout=DEBOOTSTRAP_TIMEOUT_S,
                                      check=False)  # fmt: skip
            except subprocess.TimeoutExpired:
                raise EnvironmentProblem(f"debootstrap did not finish; see {log_file}") from None
        if done.returncode != 0:
            raise EnvironmentProblem(
                f"debootstrap {suite} from {source.uri} failed (exit {done.returncode}): "
                f"{_tail(log_file)}",
                tip=f"see {log_file}; is {source.uri} reachable?",
            )
        if bundle is not None:
            shutil.copyfile(bundle, root / IMAGE_CA.lstrip("/"))
        (root / "etc" / "pip.conf").write_text(f"[global]\ncert = {IMAGE_CA}\n", encoding="utf-8")
        for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for entry in (root / cache).glob("*"):
                if entry.is_file():
                    entry.unlink()
        _import(backend, root, image, f"debootstrap {suite} {source.uri}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _import(backend: DockerBackend, root: Path, image: str, origin: str) -> None:
    repository, _, tag = image.partition(":")
    changes = [
        "ENV LANG=C.UTF-8",
        f"ENV SSL_CERT_FILE={IMAGE_CA}",
        f"ENV REQUESTS_CA_BUNDLE={IMAGE_CA}",
        f'LABEL {SETUP_LABEL}="{origin}"',
        'CMD ["/bin/bash"]',
    ]
    tar = subprocess.Popen(
        ["tar", "-C", str(root), "--numeric-owner", "-c", "."], stdout=subprocess.PIPE
    )
    assert tar.stdout is not None
    try:
        with engine_errors(image):
            backend.client.api.import_image_from_stream(
                tar.stdout, repository=repository, tag=tag, changes=changes
            )
    finally:
        tar.stdout.close()
        tar.wait(timeout=60)
    if tar.returncode != 0 or not backend.has_image(image):
        raise EnvironmentProblem(f"importing {image} into the engine failed (tar {tar.returncode})")


def _tail(log_file: Path, lines: int = 3) -> str:
    try:
        text = log_file.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return " | ".join(text.strip().splitlines()[-lines:])[-400:]
