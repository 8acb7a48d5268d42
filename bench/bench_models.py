"""Model-layer overhead per call against the loopback server (printed, not asserted).

For each SDK backend, `get_model(...)` (retry layer + pricing + the official SDK + our
request/reply translation) is timed per call, and the server's own handling time,
measured inside the server, is subtracted. The baseline, in the same run, is a bare
`httpx` POST of the very same body on a kept-alive connection, with the server time
subtracted the same way. Target: median model-layer overhead <= 5 ms.

    .venv/bin/python bench/bench_models.py [--calls 300]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import httpx

from karma.config import KarmaConfig
from karma.models import get_model
from karma.models.interface import (
    AssistantMessage,
    ModelRequest,
    ToolCall,
    ToolResult,
    ToolSpec,
    UserMessage,
)
from karma.models.script import parse_script
from karma.models.scripted import ScriptedModel
from karma.testing.model_server import ModelServer

TARGET_MS = 5.0
TOOLS = tuple(
    ToolSpec(
        name,
        f"The {name} tool. " * 10,
        {"type": "object", "properties": {"path": {"type": "string"}, "text": {"type": "string"}}},
    )
    for name in ("read_file", "write_file", "run", "list_files", "search")
)
# A mid-conversation agent request: a few KB of system prompt, history and tool output.
REQUEST = ModelRequest(
    system="You are a careful coding agent. " * 60,
    messages=(
        UserMessage("Task api: Add a /health endpoint\nAttempt 1\n" + "Context line.\n" * 40),
        AssistantMessage("Reading the app.", (ToolCall("c1", "read_file", {"path": "app.py"}),)),
        UserMessage("", (ToolResult("c1", "def app():\n    return 1\n" * 30),)),
    ),
    tools=TOOLS,
    max_tokens=4096,
)
SCRIPT = parse_script(
    {
        "conversations": [
            {
                "match": {"user": "Task api:"},
                "replies": [
                    {"text": "unused"},
                    {
                        "text": "Writing the endpoint now.",
                        "tool_calls": [
                            {
                                "name": "write_file",
                                "arguments": {"path": "app.py", "text": "x" * 400},
                            }
                        ],
                        "usage": {
                            "input_tokens": 3000,
                            "output_tokens": 200,
                            "cache_read_tokens": 2000,
                            "cache_write_tokens": 100,
                        },
                    },
                ],
            }
        ]
    }
)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _measure(server: ModelServer, call: Callable[[], object], calls: int) -> list[float]:
    """Per-call client time minus the server's handling time, in ms."""
    for _ in range(20):  # warm up: connections, imports, caches
        call()
    overheads: list[float] = []
    for _ in range(calls):
        before = len(server.requests)
        start = time.perf_counter()
        call()
        total = time.perf_counter() - start
        handled = server.requests[before:]
        assert len(handled) == 1, "exactly one HTTP request per call"
        overheads.append((total - handled[0].handle_s) * 1000)
    return overheads


def _row(label: str, values: list[float]) -> str:
    median, p95 = statistics.median(values), _percentile(values, 0.95)
    return f"  {label:<34} median {median:6.2f} ms   p95 {p95:6.2f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    verdicts: list[bool] = []
    with ModelServer(SCRIPT) as server:
        config = KarmaConfig.model_validate(
            {
                "providers": {
                    "anthropic": {"base_url": server.anthropic_base_url, "timeout_s": 10},
                    "openai": {"base_url": server.openai_base_url, "timeout_s": 10},
                }
            }
        )
        environ = {"ANTHROPIC_API_KEY": "bench", "OPENAI_API_KEY": "bench"}
        print(f"model-layer overhead per call, {args.calls} calls each (server time excluded)")
        for name, path in (
            ("anthropic:claude-sonnet-4-5", "/v1/messages"),
            ("openai:gpt-5", "/v1/chat/completions"),
        ):
            client = get_model(name, config, environ=environ)
            layer = _measure(server, lambda c=client: c.complete(REQUEST), args.calls)  # type: ignore[misc]
            body = server.requests[-1].body
            with httpx.Client(base_url=server.url, timeout=10) as raw:
                baseline = _measure(
                    server,
                    lambda r=raw, p=path, b=body: r.post(  # type: ignore[misc]
                        p, json=b, headers={"x-api-key": "bench"}
                    ).json(),
                    args.calls,
                )
            extra = statistics.median(layer) - statistics.median(baseline)
            print(f"{name}:")
            print(_row("model layer (get_model + SDK)", layer))
            print(_row("baseline (bare httpx POST + json)", baseline))
            print(f"  {'layer minus baseline (medians)':<34} {extra:+6.2f} ms")
            verdicts.append(statistics.median(layer) <= TARGET_MS)

    scripted = ScriptedModel("small", SCRIPT)
    times: list[float] = []
    for _ in range(args.calls):
        start = time.perf_counter()
        scripted.complete(REQUEST)
        times.append((time.perf_counter() - start) * 1000)
    print("scripted backend (in-process, for reference):")
    print(_row("ScriptedModel.complete", times))
    verdict = "PASS" if all(verdicts) else "MISS"
    print(f"target: median model-layer overhead <= {TARGET_MS:g} ms per call: {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
