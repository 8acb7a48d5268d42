"""A loopback model server that speaks the Anthropic and OpenAI HTTP protocols from a script.

`POST /v1/messages` (Anthropic Messages) and `POST /v1/chat/completions` (OpenAI Chat
Completions), with tool calls and usage filled in, so the real SDKs are the clients in
tests, the offline demo and the benchmarks. Replies come from a model script
(`karma.models.script`); faults come from the script's `fault` entries or from
`inject(Fault(...))`: status codes with headers, latency, timeouts, truncated or
malformed bodies, and replies cut short at `max_tokens`. Replies that break the rules
come from the script too: raw (cut-off, mis-encoded) tool arguments, unknown tools,
refusals, `pause_turn`, and extended-thinking blocks, which the server signs and, as the
Anthropic API does, requires back unchanged. Usage reports prompt-cache reads and writes
for repeated prefixes (`karma.testing.prompt_cache`). It binds 127.0.0.1 only.

    python -m karma.testing.model_server --script demo.yaml [--port 8765]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import hmac
import json
import secrets
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from karma.models.interface import AssistantMessage, ModelRequest, ProviderError, Thinking
from karma.models.script import Fault, Script, ScriptReply, Selection, load_script
from karma.testing.model_wire import (
    Protocol,
    decode_anthropic,
    decode_openai,
    encode_anthropic,
    encode_openai,
    error_body,
    undefined_tool,
)
from karma.testing.prompt_cache import PromptCache

TIMEOUT_STALL_S = 30.0


@dataclass(frozen=True)
class ServerRequest:
    """One request the server handled, for assertions (and the bench's server time)."""

    protocol: Protocol | None
    path: str
    headers: dict[str, str]
    body: Any
    """The parsed JSON body (or the raw text if it was not JSON)."""
    status: int
    """The status the server answered with (0: it closed without answering)."""
    handle_s: float
    """Server time: from the parsed request headers to the reply being ready to send."""


@dataclass(frozen=True)
class _Answer:
    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()
    content_type: str = "application/json"
    close: bool = False
    stall_s: float = 0.0
    """Wait this long (after recording the request) before closing without a reply."""


# -- the server ------------------------------------------------------------------------------


class ModelServer:
    """The loopback server; `with ModelServer(script) as server:` starts and stops it."""

    def __init__(
        self, script: Script | Path | None = None, *, port: int = 0, prompt_cache: bool = True
    ) -> None:
        self.script: Script | None = None
        self.cache = PromptCache(enabled=prompt_cache)
        self._key = secrets.token_bytes(16)
        self.set_script(script)
        self._port = port
        self._lock = threading.Lock()
        self._faults: list[list[Any]] = []  # [fault, uses left]
        self._script_fault_uses: dict[tuple[int, int], int] = {}
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._count = 0
        self.requests: list[ServerRequest] = []

    # -- control -------------------------------------------------------------------------

    def set_script(self, script: Script | Path | None) -> None:
        self.script = load_script(script) if isinstance(script, Path) else script

    def inject(self, fault: Fault) -> None:
        """Apply `fault` to the next `fault.times` requests, whatever the script says."""
        with self._lock:
            self._faults.append([fault, fault.times])

    def start(self) -> ModelServer:
        server = self

        class Handler(_Handler):
            owner = server

        self._stopping.clear()
        self._httpd = _HTTPServer(("127.0.0.1", self._port), Handler)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._stopping.set()
        self._httpd.shutdown()
        with self._lock:
            for conn in list(self._connections):
                with contextlib.suppress(OSError):  # already closed by the client
                    conn.shutdown(socket.SHUT_RDWR)
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None

    def __enter__(self) -> ModelServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("the model server is not started")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def anthropic_base_url(self) -> str:
        return self.url

    @property
    def openai_base_url(self) -> str:
        return f"{self.url}/v1"

    # -- answering -----------------------------------------------------------------------

    def _next_fault(self) -> Fault | None:
        with self._lock:
            for entry in self._faults:
                if entry[1] > 0:
                    entry[1] -= 1
                    fault: Fault = entry[0]
                    return fault
        return None

    def _script_fault(self, selection: Selection) -> Fault | None:
        fault = selection.reply.fault
        if fault is None:
            return None
        key = (selection.conversation, selection.n)
        with self._lock:
            used = self._script_fault_uses.get(key, 0)
            if used >= fault.times:
                return None
            self._script_fault_uses[key] = used + 1
        return fault

    def _wait(self, seconds: float) -> None:
        if seconds > 0:
            self._stopping.wait(seconds)

    def _answer(self, protocol: Protocol, body: Any) -> _Answer:
        with self._lock:
            self._count += 1
            n = self._count
        try:
            request = decode_anthropic(body) if protocol == "anthropic" else decode_openai(body)
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            return _error(protocol, 400, f"malformed request body ({exc!r})")
        if body.get("stream"):
            return _error(protocol, 400, "the loopback server does not stream; send stream=false")
        fault = self._next_fault()
        try:
            selection = self._select(request)
        except ProviderError as exc:
            if fault is None:
                return _error(protocol, 400, str(exc))
            selection = Selection(0, 0, ScriptReply(text=f"(no script reply: {exc})"))
        fault = fault or self._script_fault(selection)
        reply = selection.reply
        self._wait(reply.latency_s + (fault.latency_s if fault and fault.kind != "timeout" else 0))
        if fault is not None and fault.kind == "timeout":
            return _Answer(0, b"", close=True, stall_s=fault.latency_s or TIMEOUT_STALL_S)
        if fault is not None and fault.status is not None and fault.kind is None:
            return _fault_answer(protocol, fault)
        if protocol == "anthropic" and (problem := self._thinking_problem(request, selection)):
            return _error(protocol, 400, problem)
        if problem := undefined_tool(request):
            return _error(protocol, 400, problem)
        text, calls, stop = reply.text, selection.tool_calls(), selection.stop_reason()
        if fault is not None and fault.kind == "max_tokens":
            text, calls, stop = text[: max(1, len(text) // 2)], (), "max_tokens"
        raw = {c.id: s.raw_arguments for c, s in zip(calls, reply.tool_calls, strict=False)
               if s.raw_arguments is not None}  # fmt: skip
        usage = selection.usage(request)
        if reply.usage is None:
            measure = self.cache.anthropic if protocol == "anthropic" else self.cache.openai
            usage = measure(body, usage.output_tokens)
        model = str(body.get("model", "loopback"))
        if protocol == "anthropic":
            thinking = tuple(self._signed(t.text, t.redacted) for t in reply.thinking)
            encoded = encode_anthropic(model, text, calls, stop, usage, n, thinking=thinking,
                                       raw_arguments=raw)  # fmt: skip
        else:
            encoded = encode_openai(model, text, calls, stop, usage, n, raw_arguments=raw,
                                    refusal=reply.refusal)  # fmt: skip
        data = json.dumps(encoded).encode()
        if fault is not None and fault.kind == "truncated":
            return _Answer(200, data[: max(1, len(data) // 2)])
        if fault is not None and fault.kind == "malformed":
            return _Answer(
                200, b"<html><body>502 Bad Gateway</body></html>", content_type="text/html"
            )
        return _Answer(200, data)

    def _signed(self, text: str, redacted: bool = False) -> Thinking:
        if redacted:
            return Thinking(text, redacted=True)
        mac = hmac.new(self._key, text.encode(), hashlib.sha256).digest()
        return Thinking(text, base64.b64encode(mac).decode())

    def _thinking_problem(self, request: ModelRequest, selection: Selection) -> str | None:
        """What the Anthropic API would say of the thinking blocks sent back: each must
        carry its signature, and the last assistant turn, when it called tools, must keep
        the ones it had."""
        turns = [m for m in request.messages if isinstance(m, AssistantMessage)]
        for n, turn in enumerate(turns):
            for block in turn.thinking:
                if not block.redacted and self._signed(block.text) != block:
                    return f"assistant turn {n}: invalid `signature` in `thinking` block"
        if not turns or self.script is None or selection.n == 0:
            return None
        replies = self.script.conversations[selection.conversation].replies
        given = replies[selection.n - 1].thinking
        if given and turns[-1].tool_calls and len(turns[-1].thinking) != len(given):
            return ("the final assistant turn must start with its thinking blocks (sent back "
                    "with their signatures) when thinking was used")  # fmt: skip
        return None

    def _select(self, request: ModelRequest) -> Selection:
        if self.script is None:
            return Selection(0, 0, ScriptReply(text="ok"))
        return self.script.select(request)

    def _record(self, entry: ServerRequest) -> None:
        with self._lock:
            self.requests.append(entry)


def _error(protocol: Protocol | None, status: int, message: str) -> _Answer:
    return _Answer(status, json.dumps(error_body(protocol, status, message)).encode())


def _fault_answer(protocol: Protocol, fault: Fault) -> _Answer:
    status = fault.status or 500
    if isinstance(fault.body, str):
        data = fault.body.encode()
    elif isinstance(fault.body, dict):
        data = json.dumps(fault.body).encode()
    else:
        message = fault.message or f"injected fault: HTTP {status}"
        data = json.dumps(error_body(protocol, status, message)).encode()
    return _Answer(status, data, tuple(fault.headers.items()))


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up mid-reply is normal here (timeouts); say nothing."""


class _Handler(BaseHTTPRequestHandler):
    owner: ModelServer
    protocol_version = "HTTP/1.1"
    timeout = 60  # an idle keep-alive connection ends after this

    def setup(self) -> None:
        super().setup()
        # Headers and body are separate writes: without this, delayed ACKs add ~40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.owner._lock:
            self.owner._connections.add(self.connection)

    def finish(self) -> None:
        with self.owner._lock:
            self.owner._connections.discard(self.connection)
        with contextlib.suppress(OSError):  # the client is gone
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the server is a test fixture."""

    def do_POST(self) -> None:
        start = time.perf_counter()
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        protocol: Protocol | None = {
            "/v1/messages": "anthropic",
            "/v1/chat/completions": "openai",
        }.get(self.path.split("?")[0])  # type: ignore[assignment]
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = raw.decode("utf-8", "replace")
        if protocol is None:
            answer = _error(None, 404, f"no such endpoint: POST {self.path}")
        elif not isinstance(body, dict):
            answer = _error(protocol, 400, "the request body is not a JSON object")
        else:
            answer = self.owner._answer(protocol, body)
        # Recorded before the reply goes out, so a client that has its reply sees its request.
        self.owner._record(
            ServerRequest(
                protocol,
                self.path,
                {k.lower(): v for k, v in self.headers.items()},
                body,
                answer.status,
                time.perf_counter() - start,
            )
        )
        try:
            if answer.close:
                self.owner._wait(answer.stall_s)
                self.close_connection = True
            else:
                self._send(answer)
        except OSError:
            self.close_connection = True  # the client timed out and left

    def _send(self, answer: _Answer) -> None:
        self.send_response(answer.status)
        self.send_header("content-type", answer.content_type)
        self.send_header("content-length", str(len(answer.body)))
        self.send_header("request-id", "req_loopback")
        self.send_header("x-request-id", "req_loopback")
        for name, value in answer.headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(answer.body)
        self.wfile.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m karma.testing.model_server",
        description="Serve a model script over the Anthropic and OpenAI protocols on 127.0.0.1.",
    )
    parser.add_argument("--script", type=Path, help="the YAML/JSON model script")
    parser.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    args = parser.parse_args(argv)
    server = ModelServer(args.script, port=args.port).start()
    print(server.url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


__all__ = ["Fault", "ModelServer", "ServerRequest", "main"]

if __name__ == "__main__":
    raise SystemExit(main())
