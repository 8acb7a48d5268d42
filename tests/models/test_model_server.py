"""The loopback server itself: endpoints, recording, latency, stopping, running as a program."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from karma.models.interface import ModelRequest, UserMessage
from karma.testing.model_server import Fault, ModelServer

REQUEST = ModelRequest("s", (UserMessage("hi"),))


def test_unknown_endpoint_is_404(model_server: ModelServer) -> None:
    response = httpx.post(f"{model_server.url}/v1/embeddings", json={"input": "x"})
    assert response.status_code == 404
    assert "no such endpoint" in response.json()["error"]["message"]


def test_non_json_request_is_400(model_server: ModelServer) -> None:
    response = httpx.post(f"{model_server.url}/v1/messages", content=b"{not json")
    assert response.status_code == 400
    assert model_server.requests[0].body == "{not json"


def test_injected_faults_apply_to_the_next_requests_only(
    model_server: ModelServer, make_client: Any
) -> None:
    model_server.inject(Fault(status=500, times=2))
    client = make_client("openai:x", max_retries=0).client
    statuses = []
    for _ in range(3):
        try:
            client.complete(REQUEST)
        except Exception as exc:
            statuses.append(type(exc).__name__)
        else:
            statuses.append("ok")
    assert statuses == ["ServerError", "ServerError", "ok"]


def test_latency_is_added(model_server: ModelServer, make_client: Any) -> None:
    model_server.inject(Fault(latency_s=0.2))
    make_client("anthropic:x").client.complete(REQUEST)
    assert model_server.requests[0].handle_s >= 0.2


def test_stop_releases_a_stalled_request(make_client: Any, model_server: ModelServer) -> None:
    model_server.inject(Fault(kind="timeout", times=1))  # stalls 30 s unless stopped
    client = make_client("anthropic:x", timeout_s=0.2, max_retries=0).client
    with pytest.raises(Exception, match="no reply within"):
        client.complete(REQUEST)
    started = time.perf_counter()
    model_server.stop()
    assert time.perf_counter() - started < 5


def test_runs_as_a_program(tmp_path: Path) -> None:
    script = tmp_path / "s.yaml"
    script.write_text("conversations:\n  - replies:\n      - text: from the program\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "karma.testing.model_server", "--script", str(script)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        import anthropic

        with anthropic.Anthropic(api_key="k", base_url=url, max_retries=0, timeout=5) as sdk:
            message = sdk.messages.create(
                model="m", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
            )
        assert message.content[0].type == "text"
        assert message.content[0].text == "from the program"
    finally:
        os.kill(proc.pid, signal.SIGINT)
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()
