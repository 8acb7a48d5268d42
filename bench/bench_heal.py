"""Healing: classification throughput, golden-corpus accuracy, and a learning simulation.

1. Throughput: 20 KB logs (a golden failure log at the end of realistic build noise,
   numbers varied so no two are equal) classified exactly as a failed attempt is
   (`Evidence.from_log` + `Healer.classify`). Target >= 500 logs/s; median latency.
2. Accuracy: every log of tests/golden/failures (real tool output), per class.
3. Learning: a synthetic world (failure classes with frequencies; remediations with
   hidden success rates, the best one deliberately *not* first in the recipe; prevention
   hints that halve a known failure's odds) drives the real Healer (classify on real
   golden logs, observe, recall, decide, record_outcome) over N builds sharing a store.
   Printed per window of 50: first-attempt success rate and how often the first
   remediation chosen is the hidden best. Baseline, same run, same world and seed: a
   uniform random chooser and no recall.

    .venv/bin/python bench/bench_heal.py [--logs 2000] [--builds 300] [--seed 1]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from karma.config import HealConfig
from karma.heal import AttemptRecord, Evidence, Healer, PatternTable, Remedy
from karma.heal.learning import Learner
from karma.heal.remediation import tier_of
from karma.recipes import FailurePattern, RemediationSpec, load_failure_patterns
from karma.store import Store

GOLDEN = Path(__file__).resolve().parents[1] / "tests" / "golden" / "failures"
NOISE = (
    "Collecting package-{n}==1.{n}.0",
    "  Downloading package_{n}-1.{n}.0-py3-none-any.whl ({n} kB)",
    "[{n:>3}/400] Compiling module src/pkg/mod_{n}.py",
    "2026-11-24T02:49:{s:02d}.{n:03d}Z INFO worker-{n} finished job {n} in {n}ms",
    "tests/test_mod_{n}.py::test_case_{n} PASSED                       [ {s}%]",
    "npm WARN deprecated left-pad@1.{n}.0: use String.prototype.padStart()",
)


def golden_cases() -> list[tuple[dict[str, Any], bytes]]:
    cases = []
    for meta_path in sorted(GOLDEN.glob("*/*.json")):
        meta = json.loads(meta_path.read_text())
        cases.append((meta, meta_path.with_suffix(".log").read_bytes()))
    return cases


def evidence_of(meta: dict[str, Any], log: bytes | str) -> Evidence:
    return Evidence.from_log(
        log, step=meta["step"], command=str(meta["command"]), exit_code=int(meta["exit_code"]),
        limit=meta["limit"], tool=str(meta["tool"]),
    )  # fmt: skip


# -- 1. throughput ---------------------------------------------------------------------


def make_log(rng: random.Random, failure: bytes, size: int = 20_000) -> str:
    lines: list[str] = []
    tail = failure.decode("utf-8", "replace")
    length = len(tail)
    while length < size:
        n = rng.randrange(1, 999)
        lines.append(rng.choice(NOISE).format(n=n, s=n % 60))
        length += len(lines[-1]) + 1
    return "\n".join(lines) + "\n" + tail


def bench_throughput(table: PatternTable, count: int, seed: int) -> float:
    rng = random.Random(seed)
    cases = golden_cases()
    logs = [(meta, make_log(rng, log)) for meta, log in (rng.choice(cases) for _ in range(count))]
    healer = Healer(None, HealConfig(), table)
    latencies = []
    start = time.perf_counter()
    for meta, text in logs:
        t0 = time.perf_counter()
        healer.classify(evidence_of(meta, text))
        latencies.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - start
    rate = count / elapsed
    mean_kb = statistics.mean(len(t) for _, t in logs) / 1000
    print(f"throughput: {count} logs of {mean_kb:.1f} KB: {rate:,.0f} logs/s, "
          f"median {statistics.median(latencies) * 1000:.2f} ms, "
          f"p95 {sorted(latencies)[int(0.95 * count)] * 1000:.2f} ms "
          f"(target >= 500 logs/s: {'PASS' if rate >= 500 else 'FAIL'})")  # fmt: skip
    return rate


# -- 2. accuracy -------------------------------------------------------------------------


def bench_accuracy(table: PatternTable) -> float:
    per_class: dict[str, list[bool]] = defaultdict(list)
    misses = []
    for meta, log in golden_cases():
        result = table.classify(evidence_of(meta, log))
        ok = result.failure_class == meta["class"]
        per_class[str(meta["class"])].append(ok)
        if not ok:
            misses.append(f"{meta['class']}/{meta['command']} -> {result.failure_class}")
    total = sum(len(v) for v in per_class.values())
    right = sum(sum(v) for v in per_class.values())
    print(f"golden accuracy: {right}/{total} = {right / total:.1%} over {len(per_class)} classes")
    for klass, oks in sorted(per_class.items()):
        print(f"  {klass:22} {sum(oks)}/{len(oks)}")
    for miss in misses:
        print(f"  miss: {miss}")
    return right / total


# -- 3. learning -----------------------------------------------------------------------

# (class, frequency): how often a task's first attempt would fail this way untreated.
WORLD = (("type_error", 0.16), ("test_failure", 0.18), ("out_of_memory", 0.06),
         ("flaky_test", 0.08), ("dependency_resolution", 0.06), ("timeout", 0.05))  # fmt: skip
HINT_EFFECT = 0.5  # a recalled prevention hint halves the odds of that failure
KINDS = ("api", "cli", "model", "docs", "tests")


@dataclass(frozen=True)
class Failure:
    klass: str
    meta: dict[str, Any]
    log: bytes


class RandomLearner(Learner):
    """The baseline chooser: a uniform random order of the pattern's remediations."""

    def rank(self, pattern: FailurePattern) -> list[RemediationSpec]:
        specs = list(pattern.remediations)
        self.rng.shuffle(specs)
        return specs


def hidden_rates(
    table: PatternTable, failures: dict[str, Failure], rng: random.Random
) -> dict[tuple[str, str], float]:
    """Per (pattern, remediation) success rates; the best is the recipe's *second* choice."""
    rates: dict[tuple[str, str], float] = {}
    for failure in failures.values():
        pattern_id = table.classify(evidence_of(failure.meta, failure.log)).pattern_id
        specs = [s for s in table.by_id[pattern_id].remediations if tier_of(s.name) != "critical"]
        for index, spec in enumerate(specs):
            good = index == 1 or len(specs) == 1
            rates[(pattern_id, spec.name)] = (
                rng.uniform(0.75, 0.9) if good else rng.uniform(0.05, 0.35)
            )
    return rates


def simulate(
    table: PatternTable, builds: int, seed: int, *, learn: bool
) -> tuple[list[float], list[float], Counter[str], dict[str, str]]:
    world_rng = random.Random(seed)
    cases = golden_cases()
    failures = {}
    for klass, _ in WORLD:
        meta, log = next((m, log) for m, log in cases if m["class"] == klass)
        failures[klass] = Failure(klass, meta, log)
    rates = hidden_rates(table, failures, random.Random(seed + 1))
    best: dict[str, str] = {}
    for (pid, name), rate in rates.items():
        if pid not in best or rate > rates[(pid, best[pid])]:
            best[pid] = name
    files_of = {kind: [f"src/{kind}/{i}.py" for i in range(3)] for kind in KINDS}
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "karma.db")
        first_ok: list[bool] = []
        best_chosen: list[bool] = []
        last_window: Counter[str] = Counter()
        for build in range(builds):
            healer = Healer(store, HealConfig(chooser="thompson"), table, run_id=f"b{build}",
                            rng=random.Random(seed * 1000 + build))  # fmt: skip
            if not learn:
                healer.learner = RandomLearner(
                    store, "thompson", random.Random(seed * 1000 + build)
                )
            kind = world_rng.choice(KINDS)
            files = files_of[kind]
            hints = healer.recall(files, kind) if learn else []
            failure = None
            draw = world_rng.random()
            for klass, freq in WORLD:
                pattern = table.by_id[
                    table.classify(
                        evidence_of(failures[klass].meta, failures[klass].log)
                    ).pattern_id
                ]
                prevented = (
                    bool(pattern.prevention and pattern.prevention in hints)
                    or pattern.hint in hints
                )
                odds = freq * (HINT_EFFECT if prevented else 1.0)
                if draw < odds:
                    failure = failures[klass]
                    break
                draw -= odds
            first_ok.append(failure is None)
            if failure is None:
                continue
            ev = evidence_of(failure.meta, failure.log)
            history: list[AttemptRecord] = []
            for number in range(1, healer.max_retries + 2):
                cls = healer.classify(ev)
                healer.observe(ev, cls, files=files, kind=kind)
                decision = healer.decide(f"task{build}", cls, history)
                if not isinstance(decision, Remedy):
                    break
                if number == 1:
                    best_chosen.append(decision.name == best.get(cls.pattern_id))
                    if build >= builds - 50:
                        last_window[f"{cls.pattern_id}:{decision.name}"] += 1
                resolved = world_rng.random() < rates.get((cls.pattern_id, decision.name), 0.1)
                healer.record_outcome(cls, decision.name, "resolved" if resolved else "failed",
                                      task_id=f"task{build}", seconds=1.0)  # fmt: skip
                if resolved:
                    break
                history.append(AttemptRecord(number, ev, cls, decision.name, "failed"))
        store.close()
    windows = [first_ok[i : i + 50] for i in range(0, builds, 50)]
    first_rates = [sum(w) / len(w) for w in windows]
    # best-remediation share per window of builds (over the builds that failed)
    shares = []
    index = 0
    for w in windows:
        failed = sum(1 for ok in w if not ok)
        chunk = best_chosen[index : index + failed]
        index += failed
        shares.append(sum(chunk) / len(chunk) if chunk else float("nan"))
    return first_rates, shares, last_window, best


def bench_learning(table: PatternTable, builds: int, seed: int) -> bool:
    karma_first, karma_best, last, best = simulate(table, builds, seed, learn=True)
    base_first, base_best, _, _ = simulate(table, builds, seed, learn=False)
    print(f"learning simulation: {builds} builds, windows of 50 (KARMA: Thompson + recall; "
          "baseline: uniform random chooser, no recall)")  # fmt: skip
    print("  window   first-attempt KARMA / baseline   best-remediation chosen KARMA / baseline")
    for i, (kf, bf, kb, bb) in enumerate(
        zip(karma_first, base_first, karma_best, base_best, strict=True)
    ):
        print(f"  {i * 50 + 1:>3}-{(i + 1) * 50:<3}   {kf:6.0%} / {bf:6.0%}"
              f"                   {kb:6.0%} / {bb:6.0%}")  # fmt: skip
    rises_first = karma_first[-1] > karma_first[0]
    rises_best = karma_best[-1] > karma_best[0]
    by_pattern: dict[str, Counter[str]] = defaultdict(Counter)
    for key, n in last.items():
        pid, name = key.split(":")
        by_pattern[pid][name] += n
    print("  last window, first choice per pattern: " + "; ".join(
        f"{pid} -> {dict(c)}" for pid, c in sorted(by_pattern.items())))  # fmt: skip
    most_chosen = all(c.most_common(1)[0][0] == best[pid] for pid, c in by_pattern.items())
    print(f"  first-attempt rate rises: {'yes' if rises_first else 'NO'}; "
          f"best-remediation share rises: {'yes' if rises_best else 'NO'}; "
          f"best most chosen at the end: {'yes' if most_chosen else 'NO'}")  # fmt: skip
    return rises_first and rises_best and most_chosen


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logs", type=int, default=2000)
    parser.add_argument("--builds", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    table = PatternTable(load_failure_patterns())
    bench_throughput(table, args.logs, args.seed)
    bench_accuracy(table)
    ok = bench_learning(table, args.builds, args.seed)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
