"""Flakiness: how much a failed test run's output suggests the failure is not the code's.

A log alone rarely proves a test flaky, so flakiness is not a class: the failure is
classified as what it shows (a test failure, usually), with this score beside it, and the
rerun remedy decides (`rerun_failed_tests`: the rerun's verdict is what the healing
memory records and learns from). The signals are those a log does carry: retries and
reruns, a pass on rerun, timing-dependent errors, ports and locks in use, order
dependence. Each has a weight; the score is 1 - prod(1 - w) over the signals present.
"""

from __future__ import annotations

from karma.heal.evidence import Evidence
from karma.heal.scan import LineRegex, LiteralScan

WINDOW = 12_000
"""Characters of the output's end searched: where test runners report failures."""

_SIGNALS: tuple[tuple[str, float, tuple[str, ...]], ...] = (
    ("rerun", 0.6, (r"\b\d+ rerun\b", r"\bRERUN\b", r"passed on rerun",
                    r"[Rr]etrying \(?\d+ of \d+", r"Retry #\d+", r"failed \d+ times?")),
    ("timing", 0.35, (r"[Tt]imeout of \d+ ?ms exceeded", r"Exceeded timeout of \d+ ms",
                      r"TimeoutException", r"timetrap_timeout", r"timed out waiting",
                      r"deadline exceeded", r"Asynchronous wait failed",
                      r"expected to eventually")),
    ("resource", 0.4, (r"Address already in use", r"EADDRINUSE", r"database is locked",
                       r"Resource temporarily unavailable", r"Text file busy",
                       r"port \d+ (?:is )?(?:already )?in use")),
    ("connection", 0.25, (r"ConnectionResetError", r"Connection reset by peer", r"BrokenPipeError",
                          r"ECONNRESET", r"Disconnected, because no message")),
    ("order", 0.3, (r"random(?:ized)? (?:seed|order)", r"--seed[ =]\d+", r"Randomized with seed",
                    r"test order")),
    ("race", 0.3, (r"DATA RACE", r"race condition", r"deadlock",
                   r"ConcurrentModificationException")),
)  # fmt: skip
SIGNALS: tuple[tuple[str, float, tuple[LineRegex, ...]], ...] = tuple(
    (name, weight, tuple(LineRegex(rx) for rx in alternatives))
    for name, weight, alternatives in _SIGNALS
)
# One pass finds every signal's literals; a regex runs only on the lines holding one.
_SCAN = LiteralScan(lit for _, _, regexes in SIGNALS for rx in regexes for lit in rx.needs)


def signals(evidence: Evidence) -> list[str]:
    """The names of the flakiness signals present in the output."""
    text = evidence.output_tail[-WINDOW:]
    hits = _SCAN.scan(text)
    return [
        name
        for name, _, regexes in SIGNALS
        if any(rx.search(text, hits) is not None for rx in regexes)
    ]


def flakiness(evidence: Evidence) -> float:
    """0 (nothing suggests flakiness) .. 1 (several strong signals)."""
    if evidence.step not in ("test", "build"):
        return 0.0
    keep = 1.0
    present = set(signals(evidence))
    for name, weight, _ in SIGNALS:
        if name in present:
            keep *= 1 - weight
    return round(1 - keep, 3)
