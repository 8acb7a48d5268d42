"""The lease: a sandbox ends by itself when the process that owns it is gone.

Each `karma` process has one heartbeat file in a private host folder, touched by a
daemon thread every few seconds. Every container the process starts mounts that folder
read-only, and its main process (`KEEPER`, under docker's init) is a shell loop that
exits when the heartbeat is older than the lease, or the container older than its hard
maximum lifetime; the container then stops and, started with auto-remove, is removed.
A process killed with `kill -9` stops renewing, so its sandboxes are gone a lease later
instead of running on for ever. It costs one `sleep`, `date` and `stat` in the container
every few seconds, nothing per command.

The sandbox's commands cannot renew the lease (the folder is read-only for them) nor
stop the keeper (it runs as another uid). The folder of a process that died is removed
by the next process that takes a lease.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import tempfile
import threading
from pathlib import Path

MOUNT = "/run/karma-lease"
"""Where a container sees its owner's heartbeat folder."""
PREFIX = "karma-lease-"

KEEPER = r"""
lease=$1 max=$2 step=$3 start=$(date +%s)
while :; do
  now=$(date +%s)
  beat=$(stat -c %Y "$0/beat" 2>/dev/null || echo 0)
  [ $((now - beat)) -le "$lease" ] || exit 0
  [ "$max" -eq 0 ] || [ $((now - start)) -le "$max" ] || exit 0
  sleep "$step"
done
"""


def keeper_command(lease_s: float, max_lifetime_s: float) -> list[str]:
    """The container's main process: alive while the lease is renewed."""
    lease = max(2, int(lease_s))
    step = max(1, min(5, lease // 4))
    return ["sh", "-c", KEEPER, MOUNT, str(lease), str(int(max_lifetime_s)), str(step)]


class Lease:
    """This process's heartbeat: a folder to mount, renewed while the process lives."""

    def __init__(self, interval_s: float) -> None:
        _remove_dead_folders()
        self.pid = os.getpid()
        self.folder = Path(tempfile.mkdtemp(prefix=PREFIX))
        self.folder.chmod(0o755)  # the container's users read the heartbeat
        (self.folder / "pid").write_text(str(os.getpid()))
        self._beat = self.folder / "beat"
        self._beat.touch()
        self.interval_s = interval_s
        self._stop = threading.Event()
        thread = threading.Thread(target=self._renew, name="karma-lease", daemon=True)
        thread.start()
        atexit.register(self.end)

    def _renew(self) -> None:
        while not self._stop.wait(self.interval_s):
            with contextlib.suppress(OSError):
                self._beat.touch()

    def end(self) -> None:
        """Stop renewing and remove the folder: every sandbox of this process stops."""
        self._stop.set()
        shutil.rmtree(self.folder, ignore_errors=True)


_lease: Lease | None = None
_lock = threading.Lock()


def current(lease_s: float) -> Lease:
    """This process's lease, renewed often enough for a lease of `lease_s`."""
    global _lease
    interval = max(0.5, min(5.0, lease_s / 4))
    with _lock:
        # A forked child has no renewing thread; a cleaned /tmp has no heartbeat.
        if _lease is None or _lease.pid != os.getpid() or not _lease._beat.exists():
            _lease = Lease(interval)
        _lease.interval_s = min(_lease.interval_s, interval)
        return _lease


def _remove_dead_folders() -> None:
    """The heartbeat folders of processes that died (their containers are gone)."""
    with contextlib.suppress(OSError), os.scandir(tempfile.gettempdir()) as entries:
        for entry in entries:
            if not entry.name.startswith(PREFIX) or not entry.is_dir(follow_symlinks=False):
                continue
            try:
                pid = int((Path(entry.path) / "pid").read_text())
                os.kill(pid, 0)
            except ProcessLookupError:
                shutil.rmtree(entry.path, ignore_errors=True)
            except (OSError, ValueError):
                continue
