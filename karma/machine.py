"""`karma setup`: get this machine ready to build — a Docker engine and the base image.

What the machine has is surveyed once (`survey`, facts only); what to do about a missing
engine is decided from those facts alone (`engine_actions`, no side effects, so every
branch is testable); `get_ready` then acts and records one `Step` per thing it checked or
did. It changes the machine only where that is safe and asked for: as root on a
Debian/Ubuntu machine it installs `docker.io` with apt from the machine's configured
sources and starts `dockerd` with no bridge and no iptables/NAT (sandboxes never get a
network; image builds use the host's); it never starts an engine for a `DOCKER_HOST`
that names another one. When it all is there it only pings the engine and inspects an
image or two.

The base image is `sandbox.base_image` if the engine has it, else pulled; where no
registry answers, `karma/base:<suite>` is built (`karma.base_image`) and, when the
configured image was only the built-in default, recorded as `sandbox.base_image` in the
user-level config (`$KARMA_CONFIG`, else `$XDG_CONFIG_HOME/karma/config.toml`), so the
next `karma build` uses it. That file is the user's: a value already there is kept.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from karma import base_image
from karma.config import KarmaConfig, SandboxConfig, user_config_path
from karma.errors import ConfigError, EnvironmentProblem, ExitCode, KarmaError
from karma.sandbox.docker import DockerBackend
from karma.sandbox.engine import engine_errors

Did = Literal["present", "installed", "started", "pulled", "built", "configured", "failed"]
EngineAction = Literal["install", "start"]

DEFAULT_BASE_IMAGE: str = SandboxConfig.model_fields["base_image"].default
DEFAULT_SOCKETS = ("unix:///var/run/docker.sock", "unix:///run/docker.sock")
DOCKERD_FLAGS = ("--bridge=none", "--iptables=false", "--ip-masq=false", "--ip-forward=false")
DOCKERD_WAIT_S = 60.0
PROBE_TIMEOUT_S = 10
APT_TIMEOUT_S = 1800.0
LOG_DIR = Path("/var/log")
SANDBOX_TABLE = re.compile(r"^\s*\[\s*sandbox\s*\]\s*(#.*)?$")


@dataclass(frozen=True)
class Step:
    name: str
    """What was checked: `docker`, `base image`, `config`."""
    did: Did
    detail: str


@dataclass(frozen=True)
class Host:
    """What set-up needs to know about the machine, gathered before anything is changed."""

    engine: str | None
    """The engine's version when it answered, else None."""
    engine_error: str = ""
    docker_host: str | None = None
    dockerd: str | None = None
    root: bool = False
    apt: bool = False
    """A Debian or Ubuntu machine with apt-get."""


@dataclass
class Readiness:
    """The steps so far; `get_ready` appends, the CLI prints (also after a failure)."""

    say: Callable[[str], None] = lambda line: None
    steps: list[Step] = field(default_factory=list)
    base_image: str | None = None
    started: float = field(default_factory=time.monotonic)

    def add(self, name: str, did: Did, detail: str) -> None:
        self.steps.append(Step(name, did, detail))
        self.say(f"{name}: {did}: {detail}")

    def to_json(self, error: KarmaError | None = None) -> dict[str, Any]:
        code = ExitCode.OK if error is None else error.exit_code
        result: dict[str, Any] = {
            "ok": error is None,
            "exit_code": int(code),
            "base_image": self.base_image,
            "steps": [asdict(step) for step in self.steps],
            "seconds": round(time.monotonic() - self.started, 3),
        }
        if error is not None:
            result |= {"error": str(error), "tip": error.tip}
        return result


def survey(environ: Mapping[str, str]) -> Host:
    import docker

    try:
        with engine_errors():
            client = docker.from_env(timeout=PROBE_TIMEOUT_S, environment=dict(environ))
            try:
                version = DockerBackend(client).ping()
            finally:
                client.close()
        error = ""
    except KarmaError as exc:
        version, error = None, str(exc)
    return Host(
        engine=version,
        engine_error=error,
        docker_host=environ.get("DOCKER_HOST") or None,
        dockerd=shutil.which("dockerd", path=environ.get("PATH")),
        root=os.geteuid() == 0,
        apt=_debian_like() and shutil.which("apt-get", path=environ.get("PATH")) is not None,
    )


def _debian_like(os_release: Path = Path("/etc/os-release")) -> bool:
    try:
        text = os_release.read_text(encoding="utf-8")
    except OSError:
        return False
    ids: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key in ("ID", "ID_LIKE"):
            ids.update(value.strip().strip('"').split())
    return bool(ids & {"debian", "ubuntu"})


def engine_actions(host: Host) -> tuple[EngineAction, ...]:
    """What brings the engine up; an `EnvironmentProblem` with a tip where KARMA must not."""
    if host.engine is not None:
        return ()
    problem = host.engine_error or "Docker engine unreachable"
    if host.docker_host is not None and host.docker_host not in DEFAULT_SOCKETS:
        raise EnvironmentProblem(
            f"{problem}; DOCKER_HOST={host.docker_host} names another engine",
            tip="start the engine DOCKER_HOST names, or unset DOCKER_HOST so that "
            "`karma setup` starts a local one",
        )
    if not host.root:
        raise EnvironmentProblem(
            problem,
            tip="run `sudo karma setup` (it installs and starts Docker only as root), or start "
            "Docker yourself (`sudo systemctl start docker`) and join the `docker` group",
        )
    if host.dockerd is not None:
        return ("start",)
    if not host.apt:
        raise EnvironmentProblem(
            f"{problem}, and Docker is not installed",
            tip="install Docker Engine for your system (https://docs.docker.com/engine/install/)",
        )
    return ("install", "start")


def get_ready(
    config: KarmaConfig, progress: Readiness, *, environ: Mapping[str, str] | None = None
) -> Readiness:
    """Make sure of the engine, then of the base image; `progress` gets each step."""
    environ = os.environ if environ is None else environ
    host = survey(environ)
    try:
        actions = engine_actions(host)
    except EnvironmentProblem as exc:
        progress.add("docker", "failed", str(exc))
        raise
    if not actions:
        progress.add("docker", "present", f"engine {host.engine} reachable")
    if "install" in actions:
        progress.say("docker: installing docker.io with apt-get")
        apt_install(["docker.io"])
        progress.add("docker", "installed", "docker.io from the machine's apt sources")
        host = survey(environ)  # a systemd machine starts it on installation
    if "start" in actions and host.engine is None:
        log = LOG_DIR / "karma-dockerd.log"
        version = start_dockerd(shutil.which("dockerd") or "dockerd", log, environ)
        progress.add("docker", "started", f"dockerd {version}, no bridge, no NAT (log {log})")
    with engine_errors():
        backend = DockerBackend(_client(environ))
    try:
        progress.base_image = _ensure_base(config, backend, progress, environ)
    finally:
        backend.client.close()
    return progress


def _client(environ: Mapping[str, str]) -> Any:
    import docker

    return docker.from_env(timeout=600, environment=dict(environ))


def _ensure_base(
    config: KarmaConfig, backend: DockerBackend, progress: Readiness, environ: Mapping[str, str]
) -> str:
    wanted = config.sandbox.base_image
    default = wanted == DEFAULT_BASE_IMAGE
    if backend.has_image(wanted):
        progress.add("base image", "present", wanted)
        return wanted
    source = base_image.primary_source(base_image.apt_sources())
    if default and source is not None:  # an image this machine built stands in for the default
        local = base_image.local_image(source.suite)
        if backend.has_image(local):
            progress.add("base image", "present", f"{local} (built here; {wanted} is not)")
            _record(local, progress, environ)
            return local
    why = base_image.pull(wanted)
    if why is None:
        progress.add("base image", "pulled", wanted)
        return wanted
    progress.say(f"base image: cannot pull {wanted}: {why}")
    target = base_image.local_image(source.suite) if default and source else wanted
    suite = base_image.suite_of(target)
    if suite is None or source is None:
        raise EnvironmentProblem(
            f"base image {wanted} is not on this engine and cannot be pulled: {why}",
            tip=base_image.NO_SOURCE_TIP
            if source is None
            else "make it reachable, or set sandbox.base_image / KARMA_BASE_IMAGE to "
            "karma/base:<suite> (e.g. karma/base:bookworm) for `karma setup` to build",
        )
    if os.geteuid() != 0:
        raise EnvironmentProblem(
            f"base image {wanted} cannot be pulled, and building {target} needs root",
            tip="run `sudo karma setup`",
        )
    if shutil.which("debootstrap") is None:
        if not _debian_like():
            raise EnvironmentProblem(
                f"cannot build {target}: debootstrap is missing", tip="install debootstrap"
            )
        progress.say("base image: installing debootstrap with apt-get")
        apt_install(["debootstrap"])
    log = _log_file("karma-debootstrap.log")
    base_image.build(backend, target, source, log_file=log, say=progress.say)
    progress.add("base image", "built", f"{target} from {source.uri} {suite} (log {log})")
    if default:
        _record(target, progress, environ)
    return target


def apt_install(packages: list[str]) -> None:
    """`apt-get install` from the machine's configured sources, as root, non-interactively."""
    log = _log_file("karma-apt.log")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *packages]):
        with log.open("ab") as out:
            try:
                done = subprocess.run(command, stdin=subprocess.DEVNULL, stdout=out,
                                      stderr=subprocess.STDOUT, env=env, timeout=APT_TIMEOUT_S,
                                      check=False)  # fmt: skip
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise EnvironmentProblem(f"{' '.join(command)}: {exc}") from None
        if done.returncode != 0:
            raise EnvironmentProblem(
                f"{' '.join(command[:2])} {' '.join(packages)} failed (exit {done.returncode})",
                tip=f"see {log}",
            )


def start_dockerd(
    dockerd: str, log: Path, environ: Mapping[str, str], *, wait_s: float = DOCKERD_WAIT_S
) -> str:
    """Start `dockerd` in its own session (it outlives KARMA); its version once the engine
    `environ` names answers (the default socket: `engine_actions` never starts another)."""
    with log.open("ab") as out:
        daemon = subprocess.Popen(
            [dockerd, *DOCKERD_FLAGS],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        host = survey(environ)
        if host.engine is not None:
            return host.engine
        if daemon.poll() is not None:
            break
        time.sleep(0.5)
    raise EnvironmentProblem(
        f"dockerd did not come up within {wait_s:.0f} s (exit {daemon.poll()}): "
        f"{base_image._tail(log)}",
        tip=f"see {log}",
    )


def record_base_image(path: Path, image: str) -> bool:
    """Set `sandbox.base_image` in the TOML file at `path` unless it sets one; True if written.

    The rest of the file is kept byte for byte: a `base_image` line goes under an existing
    `[sandbox]` table, or a new table is appended.
    """
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    current = _parse(path, text).get("sandbox", {})
    if isinstance(current, dict) and "base_image" in current:
        return False
    line = f"base_image = {_toml_string(image)}\n"
    lines = text.splitlines(keepends=True)
    header = next((i for i, raw in enumerate(lines) if SANDBOX_TABLE.match(raw)), None)
    if header is None:
        gap = "" if not text else ("\n" if text.endswith("\n") else "\n\n")
        new = f"{text}{gap}[sandbox]\n{line}"
    else:
        new = "".join([*lines[: header + 1], line, *lines[header + 1 :]])
    _parse(path, new)  # never leave the user a file that does not parse
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(new, encoding="utf-8")
    return True


def _record(image: str, progress: Readiness, environ: Mapping[str, str]) -> None:
    path = user_config_path(environ)
    if path is None:  # no HOME: nowhere that is the user's own
        progress.add("config", "failed", f"no HOME for a user config: set KARMA_BASE_IMAGE={image}")
        return
    if record_base_image(path, image):
        setting = f"sandbox.base_image = {_toml_string(image)}"
        progress.add("config", "configured", f"{setting} in {path}")


def _parse(path: Path, text: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: malformed TOML: {exc}", tip="fix or remove the file") from None


def _toml_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _log_file(name: str) -> Path:
    directory = LOG_DIR if os.access(LOG_DIR, os.W_OK) else Path(tempfile.gettempdir())
    return directory / name
