"""Building a `SandboxSpec` from config: the environment is an allowlist, the user never root."""

from __future__ import annotations

import os
from pathlib import Path

from karma.config import KarmaConfig
from karma.sandbox import FIXED_ENV, sandbox_env, sandbox_user, spec_from_config


def test_env_is_fixed_values_plus_allowlist_only() -> None:
    config = KarmaConfig(sandbox={"env_allowlist": ("TZ", "KARMA_OK_VAR")})
    host = {"TZ": "Europe/Paris", "KARMA_OK_VAR": "1", "AWS_SECRET_ACCESS_KEY": "x", "PATH": "/h"}
    env = sandbox_env(config, host)
    assert env["TZ"] == "Europe/Paris"
    assert env["KARMA_OK_VAR"] == "1"
    assert "AWS_SECRET_ACCESS_KEY" not in env
    assert env["PATH"] == FIXED_ENV["PATH"]  # the host's PATH is not the sandbox's
    assert env["HOME"] == "/tmp"
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"


def test_spec_carries_config_limits(tmp_path: Path) -> None:
    config = KarmaConfig(sandbox={"memory_mb": 512, "cpus": 0.5, "pids_limit": 99, "tmpfs_mb": 32})
    spec = spec_from_config(
        config, image="img", workspace=tmp_path, run_id="r1", task_id="t1", environ={}
    )
    assert (spec.memory_mb, spec.cpus, spec.pids_limit, spec.tmpfs_mb) == (512, 0.5, 99, 32)
    assert (spec.run_id, spec.task_id, spec.workdir) == ("r1", "t1", "/workspace")
    assert spec.env == dict(FIXED_ENV)


def test_user_is_never_root() -> None:
    user = sandbox_user(KarmaConfig())
    if os.getuid() == 0:
        assert user == "1000:1000"
    else:
        assert user == f"{os.getuid()}:{os.getgid()}"
    assert sandbox_user(KarmaConfig(sandbox={"user": "4242:4242"})) == "4242:4242"
