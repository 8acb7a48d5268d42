"""The Docker backend of the sandbox seam: hardened containers, their lifecycle, files.

Every container has no network, drops every capability, cannot gain privileges, has a
read-only root with a size-limited tmpfs at /tmp, memory/CPU/pids limits, the labels
`karma.run_id`/`karma.task_id`, and the task's workspace bind-mounted at `workdir`.

PID 1 is docker's init with the lease's keeper under it (`karma.sandbox.lease`: the
container ends, and is auto-removed, when the owning process stops renewing its lease or
the hard maximum lifetime passes), running as a *different* unprivileged uid (`nobody`)
from the commands: so a timeout can `kill -9 -1` every process of the command user (the
whole tree, detached children and fork bombs included) without killing the container.
Besides the workspace, the only writable places are the /tmp tmpfs (`tmpfs_mb`) and
/dev/shm (`SHM_MB`), both size-limited and counted in the memory limit. How a command
runs, and how its result learns which limit stopped it, is `karma.sandbox.execution`.

Files are copied with `tar` streamed through an exec, not the archive API, which can
write neither to a read-only root nor to a tmpfs.

Commands never run as root; when KARMA does, the workspace is lent to the sandbox user
and given back at close (`karma.sandbox.lending`). The engine's client and its errors
are `karma.sandbox.engine`.
"""

from __future__ import annotations

import contextlib
import io
import secrets
import shutil
import tarfile
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from karma.sandbox import SCRATCH
from karma.sandbox.engine import client_of, engine_errors
from karma.sandbox.execution import (
    HOST_GRACE_S,
    KILL_ALL,
    RUNNER,
    WRAPPER,
    Stream,
    b64,
    drain,
    drain_to_marker,
    report_fields,
    result_of,
    rose,
)
from karma.sandbox.interface import (
    ExecResult,
    SandboxError,
    SandboxSpec,
)
from karma.sandbox.lease import MOUNT as LEASE_MOUNT
from karma.sandbox.lease import current as current_lease
from karma.sandbox.lease import keeper_command
from karma.sandbox.lending import Lent, lend_workspace, user_ids

LABEL_RUN = "karma.run_id"
LABEL_TASK = "karma.task_id"
INODES_PER_MB = 256
"""Files the /tmp tmpfs may hold per MiB of its size (65536 for the default 256 MiB)."""
SHM_MB = 64
"""Size of /dev/shm (docker's default, made explicit: it is writable scratch too)."""
OUTPUT_LIMIT = 1_000_000
"""Bytes of a command's output kept (its tail)."""


def _scratch_options(size_mb: int) -> str:
    """The /tmp tmpfs: bounded in bytes and in inodes (empty files cost kernel memory too)."""
    inodes = max(4096, size_mb * INODES_PER_MB)
    return f"rw,nosuid,nodev,size={size_mb}m,nr_inodes={inodes},mode=1777"


class DockerBackend:
    """Starts `DockerSandbox`es on the engine of `DOCKER_HOST` (or the default socket)."""

    def __init__(
        self,
        client: Any | None = None,
        *,
        output_limit: int = OUTPUT_LIMIT,
        persistent: bool = True,
    ) -> None:
        self._client = client
        self.output_limit = output_limit
        self.persistent = persistent
        """Run commands through one long-lived runner per sandbox (fast) rather than an
        `exec` each; a command that arrives while the runner is busy gets its own exec."""

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = client_of()
        return self._client

    def ping(self) -> str:
        """The engine's version; `SandboxUnavailable` when it is not reachable."""
        with engine_errors():
            self.client.ping()
            return str(self.client.version().get("Version", "?"))

    def has_image(self, image: str) -> bool:
        import docker.errors

        with engine_errors(image):
            try:
                self.client.api.inspect_image(image)
            except docker.errors.ImageNotFound:
                return False
            return True

    def start(self, spec: SandboxSpec) -> DockerSandbox:
        uid, gid = user_ids(spec.user)
        if uid == 0:
            raise SandboxError("the sandbox user must not be root (sandbox.user)")
        if not spec.workspace.is_dir():
            raise SandboxError(f"workspace {spec.workspace} is not a directory")
        workspace = spec.workspace.resolve()
        lent = lend_workspace(workspace, uid, gid)
        keeper = "65533:65533" if uid == 65534 else "65534:65534"
        api = self.client.api
        lease = current_lease(spec.lease_s)
        with engine_errors(spec.image):
            host_config = api.create_host_config(
                binds={
                    str(workspace): {"bind": spec.workdir, "mode": "rw"},
                    str(lease.folder): {"bind": LEASE_MOUNT, "mode": "ro"},
                },
                network_mode="none",
                cap_drop=["ALL"],
                security_opt=["no-new-privileges"],
                read_only=True,
                tmpfs={SCRATCH: _scratch_options(spec.tmpfs_mb)},
                mem_limit=f"{spec.memory_mb}m",
                memswap_limit=f"{spec.memory_mb}m",  # no swap: the limit is the limit
                nano_cpus=int(spec.cpus * 1e9),
                pids_limit=spec.pids_limit,
                shm_size=f"{SHM_MB}m",
                init=True,
                auto_remove=True,
            )
            created = api.create_container(
                spec.image,
                command=keeper_command(spec.lease_s, spec.max_lifetime_s),
                user=keeper,
                working_dir=spec.workdir,
                environment=dict(spec.env),
                labels={LABEL_RUN: spec.run_id, LABEL_TASK: spec.task_id},
                # network_mode "none" alone: the container's own namespace with a loopback
                # only, and the engine's /etc/hosts (`localhost`, which test servers bind);
                # `network_disabled` would leave that file empty.
                host_config=host_config,
            )
            box = DockerSandbox(self, created["Id"], spec, lent)
            try:
                api.start(created["Id"])
            except BaseException:
                box.close()
                raise
        return box

    def reap(self, *, keep_run_ids: frozenset[str] = frozenset()) -> list[str]:
        """Remove KARMA's containers whose run is not in `keep_run_ids`; return their ids."""
        with engine_errors():
            found = self.client.api.containers(all=True, filters={"label": LABEL_RUN})
            gone = [c["Id"] for c in found if c["Labels"].get(LABEL_RUN) not in keep_run_ids]
            for container_id in gone:
                self._remove(container_id)
        return gone

    def reap_run(self, run_id: str) -> list[str]:
        """Remove the containers of one run (left behind by a process that died)."""
        with engine_errors():
            found = self.client.api.containers(all=True, filters={"label": f"{LABEL_RUN}={run_id}"})
            for container in found:
                self._remove(container["Id"])
        return [c["Id"] for c in found]

    def _remove(self, container_id: str) -> None:
        import docker.errors

        # NotFound: already gone; Conflict: removal already in progress elsewhere.
        with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
            self.client.api.remove_container(container_id, force=True, v=True)


class DockerSandbox:
    """One running container; commands go through its runner, or an `exec` each."""

    def __init__(
        self, backend: DockerBackend, container_id: str, spec: SandboxSpec, lent: Lent | None
    ) -> None:
        self.id = container_id
        self.image = spec.image
        self.spec = spec
        self._backend = backend
        self._api = backend.client.api
        self._lent = lent
        self._closed = False
        self.output_limit = backend.output_limit
        """Bytes of each command's output kept: the tail, the rest is dropped (`truncated`)."""
        self._runner: Stream | None = None
        self._runner_lock = threading.Lock()

    # -- exec ---------------------------------------------------------------------------

    def exec(self, command: str, *, timeout_s: float, workdir: str | None = None) -> ExecResult:
        """Run `command` with `sh -c`; past `timeout_s` its whole process tree is killed."""
        workdir = workdir or self.spec.workdir
        if self._lent is not None:
            self._lent.refresh()
        if self._backend.persistent and self._runner_lock.acquire(blocking=False):
            try:
                result = self._run_in_runner(command, timeout_s, workdir)
            finally:
                self._runner_lock.release()
            if result is not None:
                return result
        return self._run_in_exec(command, timeout_s, workdir)

    def _run_in_exec(self, command: str, timeout_s: float, workdir: str) -> ExecResult:
        """One `exec` for one command: slower, but needs nothing running in the sandbox."""
        started = time.monotonic()
        budget = self.output_limit
        argv = ["sh", "-c", WRAPPER, "karma", f"{timeout_s:.3f}", command]
        with engine_errors(self.image):
            exec_id = self._api.exec_create(self.id, argv, user=self.spec.user, workdir=workdir)[
                "Id"
            ]
            stream = Stream(self._api.exec_start(exec_id, socket=True))
            try:
                deadline = started + timeout_s + HOST_GRACE_S
                out, total, report, host_timeout = drain(stream, deadline, budget)
            finally:
                stream.close()
            if host_timeout:
                self._kill_all()
            fields = report_fields(report)
            if fields is None and not host_timeout:
                self._check_alive()
            if fields is None:
                exit_code = 137 if host_timeout else self._exit_code(exec_id)
            else:
                exit_code = int(fields[0])
        return result_of(command, exit_code, out, total, budget, fields, started, timeout_s,
                       host_timeout)  # fmt: skip

    def _run_in_runner(self, command: str, timeout_s: float, workdir: str) -> ExecResult | None:
        """The command through the long-lived runner; None when the runner is unusable."""
        started = time.monotonic()
        budget = self.output_limit
        tag = secrets.token_hex(8)
        line = " ".join([tag, f"{timeout_s:.3f}", b64(workdir), b64(command)]).encode() + b"\n"
        with engine_errors(self.image):
            runner = self._runner_stream()
            try:
                runner.socket.settimeout(10)
                runner.socket.sendall(line)
            except OSError:
                self._drop_runner()
                return None
            deadline = started + timeout_s + HOST_GRACE_S
            try:
                out, total, fields, host_timeout = drain_to_marker(
                    runner, deadline, budget, f"\n@karma-{tag} ".encode()
                )
            except BaseException:
                self._drop_runner()
                raise
            if host_timeout:
                self._drop_runner()
                self._kill_all()
        if fields is None and not host_timeout:
            # The runner died under the command: the engine or the container went away
            # (raise), or the command killed every process of its user (a result).
            self._drop_runner()
            self._check_alive()
            out += b"\n[karma: the command's runner was killed]\n"
            return result_of(command, 137, out, total, budget, None, started, timeout_s, False)
        exit_code = 137 if fields is None else int(fields[0])
        if fields is not None and (exit_code in (124, 137) or rose(fields[3], fields[4])):
            self._drop_runner()  # the wrapper's `kill -9 -1` took the runner with it
        return result_of(command, exit_code, out, total, budget, fields, started, timeout_s,
                       host_timeout)  # fmt: skip

    def _check_alive(self) -> None:
        with engine_errors(self.image):
            state = self._api.inspect_container(self.id)["State"]
        if not state.get("Running"):
            raise SandboxError(
                f"the sandbox container {self.id[:12]} stopped ({state.get('Status')})"
            )

    def _runner_stream(self) -> Stream:
        if self._runner is None:
            exec_id = self._api.exec_create(
                self.id, ["sh", "-c", RUNNER, "karma", WRAPPER], stdin=True, user=self.spec.user
            )["Id"]
            self._runner = Stream(self._api.exec_start(exec_id, socket=True))
        return self._runner

    def _drop_runner(self) -> None:
        if self._runner is not None:
            self._runner.close()
            self._runner = None

    def _exit_code(self, exec_id: str) -> int:
        for _ in range(50):
            info = self._api.exec_inspect(exec_id)
            if not info.get("Running"):
                return int(info.get("ExitCode") or 0)
            time.sleep(0.01)
        return int(self._api.exec_inspect(exec_id).get("ExitCode") or 0)

    def _kill_all(self) -> None:
        exec_id = self._api.exec_create(self.id, KILL_ALL, user=self.spec.user)["Id"]
        self._api.exec_start(exec_id, detach=True)

    # -- files --------------------------------------------------------------------------

    def copy_in(self, src: Path, dest: str) -> None:
        """Copy the host file or folder `src` to the path `dest` in the sandbox.

        Streams a tar into `tar -x` run as the sandbox user (the docker archive API
        cannot write to a read-only root or a tmpfs), so the copy belongs to that user.
        """
        parent, _, name = dest.rstrip("/").rpartition("/")
        parent = parent or "/"
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as archive:
            archive.add(src, arcname=name)
        script = 'mkdir -p "$1" && exec tar -x --no-same-owner -C "$1"'
        with engine_errors(self.image):
            exec_id = self._api.exec_create(
                self.id, ["sh", "-c", script, "karma", parent], stdin=True, user=self.spec.user
            )["Id"]
            sock = self._api.exec_start(exec_id, socket=True)
            stream = Stream(sock)
            try:
                stream.socket.settimeout(60)
                stream.socket.sendall(buffer.getvalue())
                stream.socket.shutdown(1)  # SHUT_WR: tar sees the end of its input
                out, _, report, _ = drain(stream, time.monotonic() + 60, 64_000)
            finally:
                stream.close()
            code = self._exit_code(exec_id)
        if code != 0:
            message = (bytes(out) + report).decode("utf-8", "replace").strip()
            raise SandboxError(f"copy into the sandbox at {dest} failed: {message}")

    def copy_out(self, src: str, dest: Path) -> None:
        """Copy the sandbox file or folder `src` to the host path `dest`."""
        parent, _, name = src.rstrip("/").rpartition("/")
        with engine_errors(self.image):
            exec_id = self._api.exec_create(
                self.id,
                ["tar", "-c", "-C", parent or "/", name],
                user=self.spec.user,
            )["Id"]
            stream = Stream(self._api.exec_start(exec_id, socket=True))
            try:
                data, _, report, _ = drain(stream, time.monotonic() + 300, 1 << 62)
            finally:
                stream.close()
            code = self._exit_code(exec_id)
        if code != 0:
            raise SandboxError(
                f"copy out of the sandbox from {src} failed: {report.decode('utf-8', 'replace')}"
            )
        with tempfile.TemporaryDirectory() as scratch:
            with tarfile.open(fileobj=io.BytesIO(bytes(data))) as archive:
                archive.extractall(scratch, filter="data")
            if dest.is_dir() and not (Path(scratch) / name).is_dir():
                dest = dest / name
            elif dest.exists():
                shutil.rmtree(dest) if dest.is_dir() else dest.unlink()
            shutil.move(str(Path(scratch) / name), dest)

    # -- the end ------------------------------------------------------------------------

    def close(self) -> None:
        """Remove the container (forced) and give the workspace back; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._drop_runner()
        import requests.exceptions

        try:
            self._backend._remove(self.id)
        except requests.exceptions.ConnectionError:
            pass  # the engine is gone; `reap` removes the container when it is back
        finally:
            if self._lent is not None:
                self._lent.give_back()
