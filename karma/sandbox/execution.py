"""How one command runs in a Docker sandbox: the scripts, the stream, and which limit hit.

A command runs inside a small `sh` wrapper that enforces its timeout with coreutils
`timeout -s KILL` and reads the cgroup's OOM-kill and pids-refused counters before and
after (cgroup v1 and v2 paths), so the result can say which limit stopped it; on a
timeout or a refused fork it kills every process of the command's user. The command's
stdout and stderr share one pipe, so their interleaving is exact.

Commands reach the wrapper one of two ways: through the *runner*, one long-lived exec
per sandbox reading requests from its stdin (a command costs a few ms), or with one
`exec` each (a runc exec, 50-100 ms, used when the runner is busy or disabled). The
runner's report rides on the output pipe behind a random tag, so it marks the end of
the output exactly; a one-off exec's report comes on stderr, a channel of its own.
"""

from __future__ import annotations

import base64
import contextlib
import time
from collections.abc import Iterator
from typing import Any

from karma.sandbox.interface import ExecResult, Limit

HOST_GRACE_S = 5.0
"""Past the in-container timeout, the host stops waiting and kills the command itself."""

# $1: timeout in seconds, $2: the command, $3: the report's tag (empty for one-off execs).
# No command substitution or pipes: those fork, and under a fork bomb the wrapper must
# still be able to report and clean up.
WRAPPER = r"""
r() { v=-; if [ -r "$1" ]; then while read -r k n; do [ "$k" = "$2" ] && v=$n; done < "$1"; fi; }
m=/sys/fs/cgroup/memory/memory.oom_control; [ -r $m ] || m=/sys/fs/cgroup/memory.events
p=/sys/fs/cgroup/pids/pids.events; [ -r $p ] || p=/sys/fs/cgroup/pids.events
r $m oom_kill; m0=$v; r $p max; p0=$v
timeout -s KILL "$1" sh -c "$2" 2>&1
c=$?
r $m oom_kill; m1=$v; r $p max; p1=$v
if [ $c -eq 124 ] || [ $c -eq 137 ] || [ "$p1" != "$p0" ]; then kill -9 -1 2>/dev/null; fi
printf '\n@karma%s %s %s %s %s %s\n' "$3" $c $m0 $m1 $p0 $p1 >&2
exit $c
"""
KILL_ALL = ["sh", "-c", "kill -9 -1"]
# The runner ($1: the wrapper): one long-lived exec reading "tag timeout workdir command"
# lines (the last two base64) from stdin and running each through the wrapper, its report
# on the same pipe as the output, so that the report marks the end of the output exactly.
# It saves the engine's per-exec cost (a runc exec, ~50-100 ms) on every command.
RUNNER = r"""
W=$1
while IFS=' ' read -r n t w c; do
  w=$(printf %s "$w" | base64 -d); c=$(printf %s "$c" | base64 -d)
  (cd "$w" || { printf '\n@karma-%s 2 - - - -\n' "$n"; exit; }
   exec sh -c "$W" karma "$t" "$c" "-$n") </dev/null 2>&1
done
"""


class Stream:
    """The multiplexed stdout/stderr stream of one exec, read against a deadline."""

    def __init__(self, sock: Any) -> None:
        response = getattr(sock, "_response", None)
        # Read through the HTTP response's buffer: it may already hold the first frames.
        self.reader: Any = response.raw._fp.fp if response is not None else sock
        raw = getattr(self.reader, "raw", sock)
        self.socket: Any = getattr(raw, "_sock", raw)
        self.holder = sock

    def read_exact(self, size: int, deadline: float) -> bytes | None:
        chunks: list[bytes] = []
        while size > 0:
            self.socket.settimeout(max(0.001, deadline - time.monotonic()))
            chunk = self.reader.read1(size) if hasattr(self.reader, "read1") else None
            if chunk is None:
                chunk = self.reader.read(size)
            if not chunk:
                return None
            chunks.append(chunk)
            size -= len(chunk)
        return b"".join(chunks)

    def close(self) -> None:
        response = getattr(self.holder, "_response", None)
        with contextlib.suppress(OSError, ValueError):  # ValueError: already closed
            if response is not None:
                response.close()
            self.holder.close()


def frames(stream: Stream, deadline: float) -> Iterator[tuple[int, bytes]]:
    """Docker's multiplexed frames (stream type, payload) until the end; `TimeoutError`
    at the deadline."""
    while (header := stream.read_exact(8, deadline)) is not None:
        size = int.from_bytes(header[4:8], "big")
        payload = stream.read_exact(size, deadline) if size else b""
        if payload is None:
            return
        yield header[0], payload


def drain(stream: Stream, deadline: float, budget: int) -> tuple[bytearray, int, bytes, bool]:
    """Read frames until the end (or the deadline): the output's tail, its size, the report."""
    out = bytearray()
    report = bytearray()
    total = 0
    try:
        for kind, payload in frames(stream, deadline):
            if kind == 2:
                report += payload
                del report[:-4096]
            else:
                out += payload
                total += len(payload)
                if len(out) > 2 * budget:
                    del out[:-budget]
    except TimeoutError:
        return out, total, bytes(report), True
    return out, total, bytes(report), False


def drain_to_marker(
    stream: Stream, deadline: float, budget: int, marker: bytes
) -> tuple[bytearray, int, list[str] | None, bool]:
    """Read the runner's output up to the command's report; the report's fields or None."""
    out = bytearray()
    total = 0
    try:
        for _, payload in frames(stream, deadline):
            out += payload
            total += len(payload)
            at = out.find(marker, max(0, len(out) - len(payload) - len(marker) - 128))
            if at >= 0 and out.find(b"\n", at + len(marker)) >= 0:
                end = out.index(b"\n", at + len(marker))
                fields = out[at + len(marker) : end].decode("ascii", "replace").split()
                total -= len(out) - at
                del out[at:]
                return out, total, fields if len(fields) == 5 else None, False
            if len(out) > 2 * budget + len(marker) + 128:
                del out[: -(budget + len(marker) + 128)]
    except TimeoutError:
        return out, total, None, True
    return out, total, None, False


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def result_of(
    command: str,
    exit_code: int,
    out: bytearray,
    total: int,
    budget: int,
    fields: list[str] | None,
    started: float,
    timeout_s: float,
    host_timeout: bool,
) -> ExecResult:
    duration = time.monotonic() - started
    return ExecResult(
        command=command,
        exit_code=exit_code,
        output=bytes(out[-budget:]).decode("utf-8", errors="replace"),
        duration_s=duration,
        limit=_limit(exit_code, fields, duration, timeout_s, host_timeout),
        truncated=total > budget,
    )


def report_fields(stderr: bytes) -> list[str] | None:
    for line in reversed(stderr.decode("utf-8", "replace").splitlines()):
        if line.startswith("@karma "):
            fields = line.split()[1:]
            if len(fields) == 5:
                return fields
    return None


def rose(before: str, after: str) -> bool:
    return before.isdigit() and after.isdigit() and int(after) > int(before)


def _limit(
    exit_code: int,
    fields: list[str] | None,
    duration_s: float,
    timeout_s: float,
    host_timeout: bool,
) -> Limit | None:
    if host_timeout:
        return "timeout"
    if fields is None:
        return None
    _, mem0, mem1, pids0, pids1 = fields
    # A limit that was hit is recorded even when the command went on to exit 0.
    if rose(mem0, mem1):
        return "memory"
    if rose(pids0, pids1):
        return "pids"
    if exit_code in (124, 137) and duration_s >= timeout_s:
        return "timeout"
    return None
