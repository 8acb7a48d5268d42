"""The Docker backend against the real engine: hardening, limits, files, lifecycle, faults."""

from __future__ import annotations

import contextlib
import dataclasses
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from karma.config import KarmaConfig
from karma.errors import ExitCode
from karma.sandbox import get_sandbox, spec_from_config
from karma.sandbox.docker import LABEL_RUN, LABEL_TASK, DockerBackend, DockerSandbox
from karma.sandbox.interface import ImageMissing, SandboxSpec, SandboxUnavailable
from karma.sandbox.lease import MOUNT as LEASE_MOUNT

pytestmark = pytest.mark.docker

SECRET_VAR = "KARMA_TEST_SECRET_TOKEN"
SECRET = "sk-test-do-not-leak-5f2a"


def make_spec(image: str, workspace: Path, run_id: str, **changes: object) -> SandboxSpec:
    config = KarmaConfig(sandbox={"memory_mb": 256, "pids_limit": 128, "tmpfs_mb": 32})
    spec = spec_from_config(config, image=image, workspace=workspace, run_id=run_id, task_id="t1")
    return dataclasses.replace(spec, **changes)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def backend() -> DockerBackend:
    return DockerBackend()


@pytest.fixture(scope="module")
def box(
    docker_engine: str, backend: DockerBackend, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DockerSandbox]:
    """One sandbox shared by the checks that leave it as they found it."""
    workspace = tmp_path_factory.mktemp("ws")
    (workspace / "hello.txt").write_text("hello\n")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(SECRET_VAR, SECRET)  # in the host's environment while the box starts
        sandbox = backend.start(make_spec(docker_engine, workspace, "test-shared"))
    yield sandbox
    sandbox.close()


# -- hardening ------------------------------------------------------------------------------


def test_container_is_hardened(box: DockerSandbox, backend: DockerBackend) -> None:
    info = backend.client.api.inspect_container(box.id)
    host = info["HostConfig"]
    assert host["NetworkMode"] == "none"
    assert host["CapDrop"] == ["ALL"]
    assert "no-new-privileges" in host["SecurityOpt"]
    assert host["ReadonlyRootfs"] is True
    assert "size=32m" in host["Tmpfs"]["/tmp"] and "nr_inodes=8192" in host["Tmpfs"]["/tmp"]
    assert host["Memory"] == 256 * 2**20
    assert host["MemorySwap"] == 256 * 2**20
    assert host["NanoCpus"] == 1_000_000_000
    assert host["PidsLimit"] == 128
    assert host["Init"] is True
    assert host["Binds"][0] == f"{box.spec.workspace.resolve()}:/workspace:rw"
    assert host["Binds"][1].endswith(f":{LEASE_MOUNT}:ro") and len(host["Binds"]) == 2
    assert host["AutoRemove"] is True
    assert host["ShmSize"] == 64 * 2**20
    assert info["Config"]["Labels"][LABEL_RUN] == "test-shared"
    assert info["Config"]["Labels"][LABEL_TASK] == "t1"
    assert info["Config"]["User"] not in ("", "0", "root", "0:0")


def test_commands_run_unprivileged(box: DockerSandbox) -> None:
    result = box.exec("id -u; cat /proc/self/status | grep -E '^(CapEff|NoNewPrivs)'", timeout_s=10)
    lines = result.output.split()
    assert result.ok
    assert lines[0] != "0"
    assert "0000000000000000" in lines  # no effective capabilities
    assert lines[-1] == "1"  # NoNewPrivs


def test_no_network(box: DockerSandbox) -> None:
    # A server on the host's loopback: the sandbox's 127.0.0.1 is its own, so unreachable.
    server = socket.create_server(("127.0.0.1", 0))  # listening: the host could connect
    port = server.getsockname()[1]
    try:
        probe = (
            "import socket\n"
            "s = socket.socket()\ns.settimeout(3)\n"
            f"try:\n    s.connect(('127.0.0.1', {port}))\n    print('CONNECTED')\n"
            "except OSError as e:\n    print('refused', e.errno)\n"
            "print(open('/proc/net/route').read().count(chr(10)))\n"
        )
        result = box.exec(f'python3 -c "{probe}"; cat /proc/net/dev', timeout_s=20)
    finally:
        server.close()
    assert "CONNECTED" not in result.output
    assert "refused" in result.output
    # /proc/net/route holds its header line only: no route anywhere, so no address is reachable.
    assert "\n1\n" in result.output
    interfaces = [line.split(":")[0].strip() for line in result.output.splitlines() if ":" in line]
    assert [i for i in interfaces if i and not i.startswith(("refused", "Inter", "face"))] == ["lo"]


def test_localhost_is_the_sandboxs_own_loopback(box: DockerSandbox) -> None:
    """A suite's server on `localhost` (vite's, a test's HTTP server) resolves and binds:
    the name is the sandbox's loopback, which reaches nothing outside it."""
    probe = (
        "import socket\n"
        "address = socket.getaddrinfo('localhost', 0, socket.AF_INET)[0][4][0]\n"
        "server = socket.create_server(('localhost', 0))\n"
        "client = socket.create_connection(server.getsockname(), timeout=3)\n"
        "print(address, 'served')\n"
    )
    result = box.exec(f'python3 -c "{probe}"', timeout_s=20)
    assert result.ok, result.output
    assert result.output.strip() == "127.0.0.1 served"


def test_host_environment_is_invisible(box: DockerSandbox) -> None:
    result = box.exec("env; cat /proc/1/environ 2>/dev/null | tr '\\0' '\\n'", timeout_s=10)
    assert result.ok
    assert SECRET not in result.output
    assert SECRET_VAR not in result.output
    assert "HOME=/tmp" in result.output


def test_writes_confined_to_workspace_and_scratch(box: DockerSandbox) -> None:
    result = box.exec(
        "for f in /x /etc/x /usr/x /opt/x; do touch $f 2>/dev/null && echo WROTE $f; done;"
        "echo scratch > /tmp/s && cat /tmp/s; echo work > made.txt && cat made.txt",
        timeout_s=10,
    )
    assert "WROTE" not in result.output
    assert "scratch\nwork\n" in result.output
    assert (box.spec.workspace / "made.txt").read_text() == "work\n"


# -- exec results ------------------------------------------------------------------------------


def test_exit_code_and_interleaved_output(box: DockerSandbox) -> None:
    result = box.exec("echo a; echo b >&2; echo c; exit 3", timeout_s=10)
    assert (result.exit_code, result.output, result.limit, result.ok) == (
        3,
        "a\nb\nc\n",
        None,
        False,
    )
    assert box.exec("cat hello.txt", timeout_s=10, workdir="/workspace").output == "hello\n"
    assert box.exec("pwd", timeout_s=10, workdir="/tmp").output == "/tmp\n"


def test_output_keeps_the_tail(box: DockerSandbox) -> None:
    box.output_limit = 1000
    try:
        result = box.exec("seq 1 20000", timeout_s=10)
    finally:
        box.output_limit = DockerBackend().output_limit
    assert result.truncated
    assert len(result.output) == 1000
    assert result.output.endswith("19999\n20000\n")


def test_timeout_kills_the_whole_tree(box: DockerSandbox) -> None:
    result = box.exec("sleep 1000 & setsid sleep 1001 & sleep 1002", timeout_s=2)
    assert result.limit == "timeout"
    assert result.timed_out and not result.ok
    left = box.exec("cat /proc/[0-9]*/cmdline | tr '\\0' ' '", timeout_s=10)
    assert "sleep 100" not in left.output


def test_copy_in_and_out(box: DockerSandbox, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("A")
    (src / "sub" / "b.txt").write_text("B")
    box.copy_in(src, "/tmp/copied")
    box.copy_in(src / "a.txt", "/workspace/a-copy.txt")
    result = box.exec(
        "cat /tmp/copied/a.txt /tmp/copied/sub/b.txt a-copy.txt; echo -n new > /tmp/copied/n",
        timeout_s=10,
    )
    assert result.output == "ABA"
    box.copy_out("/tmp/copied", tmp_path / "back")
    box.copy_out("/tmp/copied/n", tmp_path / "n.txt")
    assert (tmp_path / "back" / "sub" / "b.txt").read_text() == "B"
    assert (tmp_path / "n.txt").read_text() == "new"


# -- limits (each on its own sandbox: they hit the container's limits) -------------------


def test_fork_bomb_is_stopped_by_pids(
    docker_engine: str, backend: DockerBackend, tmp_path: Path
) -> None:
    sandbox = backend.start(make_spec(docker_engine, tmp_path, "test-pids", pids_limit=32))
    try:
        result = sandbox.exec("f() { f | f & }; f; sleep 3", timeout_s=30)
        assert result.limit == "pids"
        assert not result.ok
        assert sandbox.exec("echo alive", timeout_s=10).output == "alive\n"
    finally:
        sandbox.close()


def test_memory_hog_is_stopped_by_memory(
    docker_engine: str, backend: DockerBackend, tmp_path: Path
) -> None:
    sandbox = backend.start(make_spec(docker_engine, tmp_path, "test-mem", memory_mb=128))
    try:
        result = sandbox.exec(
            "python3 -c 'x = bytearray(512 * 2**20); print(len(x))'", timeout_s=60
        )
        assert result.limit == "memory"
        assert result.oom_killed and result.exit_code == 137
        assert sandbox.exec("echo alive", timeout_s=10).output == "alive\n"
    finally:
        sandbox.close()


# -- lifecycle ---------------------------------------------------------------------------


def test_close_removes_the_container_and_returns_the_workspace(
    docker_engine: str, backend: DockerBackend, tmp_path: Path
) -> None:
    owner = (tmp_path.stat().st_uid, tmp_path.stat().st_gid)
    sandbox = backend.start(make_spec(docker_engine, tmp_path, "test-close"))
    sandbox.exec("mkdir -p d && echo x > d/f", timeout_s=10)
    sandbox.close()
    sandbox.close()  # twice is fine
    assert backend.client.api.containers(all=True, filters={"id": sandbox.id}) == []
    assert (tmp_path / "d" / "f").read_text() == "x\n"
    assert ((tmp_path / "d" / "f").stat().st_uid, tmp_path.stat().st_gid) == owner


def test_reap_removes_orphans_by_label_and_keeps_the_kept(
    docker_engine: str, backend: DockerBackend, tmp_path: Path
) -> None:
    orphan = backend.start(make_spec(docker_engine, tmp_path, "test-reap-dead"))
    kept = backend.start(make_spec(docker_engine, tmp_path, "test-reap-live"))
    try:
        # Other runs may share this engine (other test sessions): keep every run but the dead one.
        found = backend.client.api.containers(all=True, filters={"label": LABEL_RUN})
        live = frozenset(c["Labels"][LABEL_RUN] for c in found) - {"test-reap-dead"}
        assert backend.reap(keep_run_ids=live) == [orphan.id]
        remaining = {c["Id"] for c in backend.client.api.containers(all=True)}
        assert orphan.id not in remaining
        assert kept.id in remaining
        assert backend.reap_run("test-reap-live") == [kept.id]
    finally:
        orphan.close()
        kept.close()


# -- faults -------------------------------------------------------------------------------


def test_daemon_down_is_unavailable_with_a_fix(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    with pytest.raises(SandboxUnavailable) as caught:
        get_sandbox(KarmaConfig())
    assert caught.value.exit_code == ExitCode.ENVIRONMENT
    assert caught.value.tip is not None and "karma setup" in caught.value.tip
    with pytest.raises(SandboxUnavailable):
        DockerBackend().start(make_spec("karma/base:bookworm", tmp_path, "test-down"))


def test_missing_image_says_so(backend: DockerBackend, tmp_path: Path) -> None:
    with pytest.raises(ImageMissing) as caught:
        backend.start(make_spec("karma/no-such-image:nope", tmp_path, "test-missing"))
    assert caught.value.exit_code == ExitCode.ENVIRONMENT
    assert "karma/no-such-image:nope" in str(caught.value)
    assert caught.value.tip


def test_root_user_is_refused(docker_engine: str, backend: DockerBackend, tmp_path: Path) -> None:
    from karma.sandbox.interface import SandboxError

    with pytest.raises(SandboxError, match="root"):
        backend.start(make_spec(docker_engine, tmp_path, "test-root", user="0:0"))


# -- the two ways a command runs ----------------------------------------------------------


def test_one_exec_per_command_behaves_the_same(docker_engine: str, tmp_path: Path) -> None:
    plain = DockerBackend(persistent=False)
    sandbox = plain.start(make_spec(docker_engine, tmp_path, "test-plain"))
    try:
        result = sandbox.exec("echo a; echo b >&2; exit 4", timeout_s=10)
        assert (result.exit_code, result.output) == (4, "a\nb\n")
        slow = sandbox.exec("sleep 1000 & sleep 1001", timeout_s=1)
        assert slow.limit == "timeout"
        left = sandbox.exec("cat /proc/[0-9]*/cmdline | tr '\\0' ' '", timeout_s=10)
        assert "sleep 100" not in left.output
    finally:
        sandbox.close()


def test_concurrent_commands_do_not_mix(box: DockerSandbox) -> None:
    results: dict[int, str] = {}

    def run(n: int) -> None:
        results[n] = box.exec(
            f"for i in 1 2 3; do echo {n}-$i; sleep 0.1; done", timeout_s=20
        ).output

    threads = [threading.Thread(target=run, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {n: f"{n}-1\n{n}-2\n{n}-3\n" for n in range(3)}


def test_a_command_that_kills_every_process_of_its_user(box: DockerSandbox) -> None:
    result = box.exec("kill -9 -1; echo survived", timeout_s=10)
    assert result.exit_code == 137
    assert "survived" in result.output
    assert box.exec("echo still", timeout_s=10).output == "still\n"


class SocketProxy:
    """A unix-socket proxy to the real engine, so a test can cut the engine off mid-command
    without stopping the daemon everyone shares."""

    def __init__(self, path: Path, target: str = "/var/run/docker.sock") -> None:
        self.path, self.target = path, target
        self.listener = socket.socket(socket.AF_UNIX)
        self.listener.bind(str(path))
        self.listener.listen(16)
        self.open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                client, _ = self.listener.accept()
                upstream = socket.socket(socket.AF_UNIX)
                upstream.connect(self.target)
                self.open += [client, upstream]
                for a, b in ((client, upstream), (upstream, client)):
                    threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
            dst.shutdown(socket.SHUT_WR)  # pass the end of the stream on

    def cut(self) -> None:
        self.listener.close()
        self.path.unlink()
        for sock in self.open:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


@pytest.mark.parametrize("persistent", [True, False])
def test_engine_lost_mid_command_is_unavailable(
    docker_engine: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, persistent: bool
) -> None:
    direct = DockerBackend()  # for the clean-up, straight to the engine
    direct.ping()
    proxy = SocketProxy(tmp_path / "engine.sock")
    monkeypatch.setenv("DOCKER_HOST", f"unix://{proxy.path}")
    backend = DockerBackend(persistent=persistent)
    sandbox = backend.start(make_spec(docker_engine, tmp_path, "test-lost"))
    try:
        assert sandbox.exec("echo up", timeout_s=10).output == "up\n"
        threading.Timer(0.5, proxy.cut).start()
        with pytest.raises(SandboxUnavailable) as caught:
            sandbox.exec("sleep 5", timeout_s=10)
        assert caught.value.exit_code == ExitCode.ENVIRONMENT
        sandbox.close()  # the engine is gone: close does not raise
    finally:
        direct.reap_run("test-lost")


def test_a_missing_workdir_fails_the_command_not_the_sandbox(box: DockerSandbox) -> None:
    result = box.exec("pwd", timeout_s=10, workdir="/no/such/dir")
    assert result.exit_code != 0 and result.limit is None
    assert "/no/such/dir" in result.output
    assert box.exec("echo fine", timeout_s=10).output == "fine\n"


def test_files_the_host_writes_meanwhile_stay_writable(box: DockerSandbox) -> None:
    (box.spec.workspace / "pkg").mkdir(exist_ok=True)
    (box.spec.workspace / "pkg" / "host.py").write_text("x = 1\n")  # as the host's user
    result = box.exec(
        "echo 'y = 2' >> pkg/host.py && touch pkg/new.py && cat pkg/host.py", timeout_s=10
    )
    assert result.ok, result.output
    assert result.output == "x = 1\ny = 2\n"


# -- the lease ----------------------------------------------------------------------------

OWNER = """
import sys, time
from pathlib import Path
from karma.sandbox.docker import DockerBackend
from karma.sandbox.interface import SandboxSpec

box = DockerBackend().start(SandboxSpec(image=sys.argv[1], workspace=Path(sys.argv[2]),
                                        run_id="test-lease", task_id="t1", lease_s=3))
print(box.id, flush=True)
time.sleep(600)
"""


def _gone_within(backend: DockerBackend, container_id: str, seconds: float) -> float | None:
    """Seconds until the container was gone (not even listed), or None."""
    import time

    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if not backend.client.api.containers(all=True, filters={"id": container_id}):
            return time.monotonic() - started
        time.sleep(0.5)
    return None


def test_a_sandbox_whose_owner_was_killed_stops_within_the_lease(
    docker_engine: str, backend: DockerBackend, tmp_path: Path
) -> None:
    import signal
    import subprocess
    import sys
    import time

    owner = subprocess.Popen([sys.executable, "-c", OWNER, docker_engine, str(tmp_path)],
                             stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert owner.stdout is not None
        container_id = owner.stdout.readline().strip()
        assert container_id
        time.sleep(8)  # past the lease: the owner renews it, so the sandbox stays
        state = backend.client.api.inspect_container(container_id)["State"]
        assert state["Running"], state
    finally:
        owner.send_signal(signal.SIGKILL)
        owner.wait()
    took = _gone_within(backend, container_id, 30)
    backend._remove(container_id)
    assert took is not None, "the sandbox outlived its killed owner"
    assert took < 3 + 1 + 10  # the lease, the keeper's step, slack for a loaded machine


def test_a_sandbox_stops_at_its_maximum_lifetime(
    docker_engine: str, backend: DockerBackend, tmp_path: Path
) -> None:
    sandbox = backend.start(make_spec(docker_engine, tmp_path, "test-lifetime", max_lifetime_s=3))
    try:
        assert _gone_within(backend, sandbox.id, 30) is not None
    finally:
        sandbox.close()


def test_the_sandbox_cannot_renew_or_end_its_lease(box: DockerSandbox) -> None:
    result = box.exec(
        f"touch {LEASE_MOUNT}/beat 2>&1 || echo NO-RENEW; kill -9 1 2>&1 || echo NO-KILL;"
        "sleep 1; echo alive",
        timeout_s=20,
    )
    assert "NO-RENEW" in result.output and "NO-KILL" in result.output
    assert result.output.rstrip().endswith("alive")
