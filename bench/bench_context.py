"""Prompt caching and context elision on a long attempt (printed, not asserted).

The 30-step attempt of `karma.testing.long_attempt` (file reads of real sources, failing
test runs answered with real CI logs) runs through the real SDK against the loopback
server, which reports cache reads and writes the way the providers do for identical
prefixes. Runs: without cache or elision (the baseline), cache only, then elision only
and both for each context window given. Printed per run: input tokens per attempt
(cached or not), the share read from the cache, the largest request, the elisions; and
the two targets of issue 15: cache reads >= 85 % of input tokens, input tokens >= 30 %
below the same attempt without elision. Both depend on how fast the attempt grows
against the window: each elision rewrites the cache from its oldest stub on.

    .venv/bin/python bench/bench_context.py [--windows 40000,56000] [--provider openai]
"""

from __future__ import annotations

import argparse
import tempfile
from functools import partial
from pathlib import Path

from karma.testing.long_attempt import run_long_attempt
from karma.testing.model_server import ModelServer

CORPUS = Path(__file__).resolve().parent.parent / "tests/golden/failures/public/test.jsonl"
MODELS = {"anthropic": "anthropic:claude-sonnet-4-5", "openai": "openai:gpt-5"}


def measure(
    provider: str, *, cache: bool, elide: bool, window: int, steps: int
) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp, ModelServer(prompt_cache=cache) as server:
        result, calls = run_long_attempt(
            Path(tmp), server, CORPUS, elide_at=0.6 if elide else 1.0,
            window=window if elide else 10**9, model=MODELS[provider], steps=steps,
        )  # fmt: skip
    assert result.status == "finished", result.detail
    read = sum(row["cache_read_tokens"] for row in calls)
    total = sum(row["input_tokens"] + row["cache_read_tokens"] + row["cache_write_tokens"]
                for row in calls)  # fmt: skip
    biggest = max(row["input_tokens"] + row["cache_read_tokens"] + row["cache_write_tokens"]
                  for row in calls)  # fmt: skip
    cost = sum(row["cost_usd"] for row in calls)
    return {"input": total, "read": read / total, "biggest": biggest,
            "elided": result.elided, "cost": cost}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", default="40000,56000,64000",
                        help="context windows to try, tokens, comma-separated")  # fmt: skip
    parser.add_argument("--provider", choices=sorted(MODELS), default="anthropic")
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    windows = [int(w) for w in args.windows.split(",")]
    run = partial(measure, args.provider, steps=args.steps)
    base = run(cache=False, elide=False, window=0)
    plain = run(cache=True, elide=False, window=0)
    rows = {"baseline (no cache, no elision)": base, "cache only": plain}
    for window in windows:
        rows[f"elision only, window {window:,}"] = run(cache=False, elide=True, window=window)
        rows[f"cache + elision, window {window:,}"] = run(cache=True, elide=True, window=window)
    print(f"{args.steps}-step attempt through the {args.provider} SDK, elision past 60 % "
          "of the window")  # fmt: skip
    print(f"{'run':36} {'input tok':>10} {'vs base':>8} {'cache read':>10} {'largest':>8} "
          f"{'elided':>6} {'cost $':>7}")  # fmt: skip
    for name, f in rows.items():
        change = f["input"] / base["input"] - 1
        print(f"{name:36} {f['input']:>10,.0f} {change:>+8.0%} {f['read']:>10.1%} "
              f"{f['biggest']:>8,.0f} {f['elided']:>6.0f} {f['cost']:>7.3f}")  # fmt: skip
    print("targets: cache reads >= 85 % of input tokens; input tokens >= 30 % below the "
          "same attempt without elision (cache only)")  # fmt: skip
    for window in windows:
        both = rows[f"cache + elision, window {window:,}"]
        saved = 1 - both["input"] / plain["input"]
        met = "met" if both["read"] >= 0.85 and saved >= 0.30 else "NOT met"
        print(f"  window {window:>7,}: cache reads {both['read']:.1%}, input tokens "
              f"{saved:.1%} below: {met}")  # fmt: skip


if __name__ == "__main__":
    main()
