"""The sandbox seam's front door: pick a backend from config, and build a `SandboxSpec`.

A sandbox's environment is never the host's: it is a few fixed safe values plus the
host variables named in `sandbox.env_allowlist`. The user commands run as is the
configured `sandbox.user` when set explicitly; otherwise the host's uid:gid when KARMA
does not run as root, and the unprivileged default (1000:1000) when it does.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from karma.config import KarmaConfig
from karma.sandbox.interface import SandboxBackend, SandboxSpec

SANDBOX_PATH = "/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
"""The stack images put their virtualenv at /opt/venv; it comes first."""

SCRATCH = "/tmp"  # noqa: S108 - a path inside the container: its private tmpfs
"""The sandbox's writable scratch (a size-limited tmpfs); the root filesystem is read-only."""

FIXED_ENV: Mapping[str, str] = {
    "HOME": SCRATCH,
    "PATH": SANDBOX_PATH,
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONUNBUFFERED": "1",
    "PYTHONPATH": f"{SCRATCH}/karma-site/boot",  # the installed project: sandbox/project.py
    "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    "PIP_NO_INPUT": "1",
    "LANG": "C.UTF-8",
}


def sandbox_env(config: KarmaConfig, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The whole environment of a sandbox: the fixed values, then the allowlisted host ones."""
    environ = os.environ if environ is None else environ
    env = dict(FIXED_ENV)
    for name in config.sandbox.env_allowlist:
        if name in environ:
            env[name] = environ[name]
    return env


def sandbox_user(config: KarmaConfig) -> str:
    """uid:gid the commands run as (never root; see the module docstring)."""
    if "user" in config.sandbox.model_fields_set or os.getuid() == 0:
        return config.sandbox.user
    return f"{os.getuid()}:{os.getgid()}"


def spec_from_config(
    config: KarmaConfig,
    *,
    image: str,
    workspace: Path,
    run_id: str,
    task_id: str,
    environ: Mapping[str, str] | None = None,
) -> SandboxSpec:
    """A `SandboxSpec` with the limits, user and environment of `config.sandbox`."""
    cfg = config.sandbox
    return SandboxSpec(
        image=image,
        workspace=workspace,
        run_id=run_id,
        task_id=task_id,
        workdir=cfg.workdir,
        memory_mb=cfg.memory_mb,
        cpus=cfg.cpus,
        pids_limit=cfg.pids_limit,
        tmpfs_mb=cfg.tmpfs_mb,
        user=sandbox_user(config),
        env=sandbox_env(config, environ),
        lease_s=cfg.lease_s,
        max_lifetime_s=cfg.max_lifetime_s,
    )


def get_sandbox(config: KarmaConfig) -> SandboxBackend:
    """The sandbox backend (Docker, the only one), its engine checked: `SandboxUnavailable`
    (exit 3, with how to start Docker) when it is not reachable. `docker` is imported here."""
    del config  # one backend today; the parameter is where a choice of backend will go
    from karma.sandbox.docker import DockerBackend

    backend = DockerBackend()
    backend.ping()
    return backend


__all__ = ["get_sandbox", "sandbox_env", "sandbox_user", "spec_from_config"]
