"""Every fault the issue lists, through the real SDKs: retried as specified, or failing fast."""

from __future__ import annotations

import json
from typing import Any

import pytest

from karma.errors import ExitCode
from karma.models.interface import (
    AuthFailed,
    BadRequest,
    ConnectionFailed,
    MalformedReply,
    ModelRequest,
    Overloaded,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    ServerError,
    SpendLimitReached,
    UserMessage,
)
from karma.models.script import parse_script
from karma.testing.model_server import Fault, ModelServer

Connect = Any

REQUEST = ModelRequest("system", (UserMessage("hello"),))


def test_429_retry_after_is_honoured(model_server: ModelServer, connect: Connect) -> None:
    model_server.inject(Fault(status=429, headers={"retry-after": "1.5"}))
    conn = connect()
    reply = conn.client.complete(REQUEST)
    assert reply.text == "ok"
    assert len(model_server.requests) == 2
    assert [r.status for r in model_server.requests] == [429, 200]
    assert len(conn.sleeps) == 1 and 1.5 <= conn.sleeps[0] < 2.6


@pytest.mark.parametrize(
    "fault",
    [
        Fault(status=529),
        Fault(status=500),
        Fault(status=503, headers={"retry-after-ms": "20"}),
        Fault(kind="truncated"),
        Fault(kind="malformed"),
        Fault(kind="timeout", latency_s=2.0),
    ],
    ids=["529", "500", "503", "truncated", "malformed", "timeout"],
)
def test_transient_faults_are_retried(
    model_server: ModelServer, connect: Connect, fault: Fault
) -> None:
    model_server.inject(fault)
    conn = connect(timeout_s=0.5 if fault.kind == "timeout" else 10.0)
    assert conn.client.complete(REQUEST).text == "ok"
    assert len(model_server.requests) == 2
    assert len(conn.sleeps) == 1


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        (Fault(status=429, headers={"retry-after": "0"}, times=9), RateLimited),
        (Fault(status=529, times=9), Overloaded),
        (Fault(status=500, times=9), ServerError),
        (Fault(kind="timeout", latency_s=2.0, times=9), ProviderTimeout),
        (Fault(kind="truncated", times=9), MalformedReply),
        (Fault(kind="malformed", times=9), MalformedReply),
    ],
    ids=["429", "529", "500", "timeout", "truncated", "malformed"],
)
def test_retries_exhausted_is_a_typed_error(
    model_server: ModelServer, connect: Connect, fault: Fault, error: type[ProviderError]
) -> None:
    model_server.inject(fault)
    conn = connect(timeout_s=0.3 if fault.kind == "timeout" else 10.0, max_retries=2)
    with pytest.raises(error, match="gave up after 3 attempts") as caught:
        conn.client.complete(REQUEST)
    assert isinstance(caught.value, ProviderError)
    assert len(model_server.requests) == 3
    assert len(conn.sleeps) == 2


def test_max_tokens_stop_is_a_reply_not_an_error(
    model_server: ModelServer, connect: Connect
) -> None:
    model_server.set_script(
        parse_script({"conversations": [{"replies": [{"text": "a long answer"}]}]})
    )
    model_server.inject(Fault(kind="max_tokens"))
    reply = connect().client.complete(REQUEST)
    assert reply.stop_reason == "max_tokens"
    assert reply.text == "a long"
    assert len(model_server.requests) == 1


@pytest.mark.parametrize(
    "message",
    [
        "You have reached your spend limit for this month.",
        "Your credit balance is too low to access the API.",
        "You exceeded your current quota, please check your plan and billing details.",
    ],
)
def test_spend_limit_429_fails_fast(
    model_server: ModelServer, connect: Connect, message: str
) -> None:
    model_server.inject(Fault(status=429, message=message, headers={"retry-after": "1"}, times=9))
    conn = connect()
    with pytest.raises(SpendLimitReached) as caught:
        conn.client.complete(REQUEST)
    assert caught.value.exit_code == ExitCode.BUDGET
    assert len(model_server.requests) == 1
    assert conn.sleeps == []


@pytest.mark.parametrize("status", [401, 403])
def test_auth_failures_fail_fast_without_the_key(
    model_server: ModelServer, connect: Connect, status: int, secret: str
) -> None:
    # A provider's 401 may quote (part of) the key; KARMA's message must not.
    model_server.inject(
        Fault(status=status, message=f"Incorrect API key provided: {secret}", times=9)
    )
    conn = connect()
    with pytest.raises(AuthFailed) as caught:
        conn.client.complete(REQUEST)
    assert caught.value.exit_code == ExitCode.ENVIRONMENT
    assert secret not in str(caught.value)
    assert secret[:12] not in str(caught.value)
    assert len(model_server.requests) == 1


def test_bad_request_is_not_retried(model_server: ModelServer, connect: Connect) -> None:
    model_server.inject(Fault(status=400, message="messages: field required", times=9))
    with pytest.raises(BadRequest, match="messages: field required"):
        connect().client.complete(REQUEST)
    assert len(model_server.requests) == 1


def test_script_faults_are_consumed_per_server(model_server: ModelServer, connect: Connect) -> None:
    model_server.set_script(
        parse_script(
            {
                "conversations": [
                    {
                        "replies": [
                            {"text": "fine", "fault": {"status": 529, "times": 2}},
                        ]
                    }
                ]
            }
        )
    )
    conn = connect()
    assert conn.client.complete(REQUEST).text == "fine"
    assert [r.status for r in model_server.requests] == [529, 529, 200]
    assert conn.client.complete(REQUEST).text == "fine"
    assert len(model_server.requests) == 4


def test_openai_unreadable_tool_arguments_are_an_invalid_call_not_a_retry(
    model_server: ModelServer, make_client: Any
) -> None:
    body = {
        "id": "x",
        "object": "chat.completion",
        "created": 0,
        "model": "gpt-5",
        "choices": [
            {
                "index": 0,
                "finish_reason": "tool_calls",
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "read_file", "arguments": '{"path": "a.py"'},
                        }
                    ],
                },
            }
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }
    model_server.inject(Fault(status=200, body=json.dumps(body), times=9))
    client = make_client("openai:gpt-5").client
    reply = client.complete(REQUEST)  # once: asking again would get the same reply
    assert len(model_server.requests) == 1
    (call,) = reply.tool_calls
    assert call.name == "read_file" and call.arguments == {}
    assert call.invalid is not None and '{"path": "a.py"' in call.invalid


def test_connection_refused(connect: Connect, model_server: ModelServer) -> None:
    conn = connect(max_retries=1)
    model_server.stop()
    with pytest.raises(ConnectionFailed, match="gave up after 2 attempts"):
        conn.client.complete(REQUEST)
