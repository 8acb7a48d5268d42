"""The sandbox seam: start a container for a task, run commands in it, copy files, close.

`ExecResult` says how a command ended, including which limit stopped it. Backends raise
only `SandboxError`s; `SandboxUnavailable` means the engine itself is gone (an
infrastructure failure, never the task's fault).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from karma.errors import EnvironmentProblem, KarmaError

Limit = Literal["timeout", "memory", "pids"]


@dataclass(frozen=True)
class SandboxSpec:
    """What a sandbox is made from: an image, a workspace to mount, limits and labels."""

    image: str
    workspace: Path
    """Host directory bind-mounted read-write at `workdir`."""
    run_id: str
    task_id: str
    workdir: str = "/workspace"
    memory_mb: int = 2048
    cpus: float = 1.0
    pids_limit: int = 256
    tmpfs_mb: int = 256
    user: str = "1000:1000"
    env: Mapping[str, str] = field(default_factory=dict)
    """The whole environment of the sandbox: built from an allowlist, never the host's."""
    lease_s: float = 30.0
    """The container stops by itself when its owner has not renewed the lease for this long."""
    max_lifetime_s: float = 43_200.0
    """The container stops by itself after this long (0: no limit)."""


@dataclass(frozen=True)
class ExecResult:
    command: str
    exit_code: int
    output: str
    """stdout and stderr interleaved, tail-truncated to the backend's output budget."""
    duration_s: float
    limit: Limit | None = None
    """The limit that stopped the command, if one did."""
    truncated: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and self.limit is None

    @property
    def timed_out(self) -> bool:
        return self.limit == "timeout"

    @property
    def oom_killed(self) -> bool:
        return self.limit == "memory"


class Sandbox(Protocol):
    """One running container, owned by one task attempt."""

    id: str
    image: str

    def exec(self, command: str, *, timeout_s: float, workdir: str | None = None) -> ExecResult:
        """Run `command` with `sh -c`; a command past `timeout_s` is killed."""
        ...

    def copy_in(self, src: Path, dest: str) -> None: ...

    def copy_out(self, src: str, dest: Path) -> None: ...

    def close(self) -> None:
        """Stop and remove the container; safe to call twice."""
        ...


class SandboxBackend(Protocol):
    def start(self, spec: SandboxSpec) -> Sandbox: ...

    def reap(self, *, keep_run_ids: frozenset[str] = frozenset()) -> list[str]:
        """Remove KARMA's containers whose run is not in `keep_run_ids`; return their ids."""
        ...

    def reap_run(self, run_id: str) -> list[str]:
        """Remove the containers of one run (a resumed run's orphans); return their ids."""
        ...


class SandboxError(KarmaError):
    pass


class SandboxTimeout(SandboxError, TimeoutError):
    pass


class SandboxUnavailable(SandboxError, EnvironmentProblem):
    """The Docker engine is not reachable (not running, or lost mid-run)."""


class ImageMissing(SandboxError, EnvironmentProblem):
    pass


class ImageBuildError(SandboxError):
    pass
