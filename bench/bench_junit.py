"""Bench: the tests gate's own overhead on a suite of 20,000 tests (the run excluded).

A suite is generated in a temporary folder (20 files: generated test functions,
parametrized tests, and a test of pytest's subtests, two of them failing; 31 failing
tests and 10 skipped among them), run once by the real pytest with `--junitxml`, and
collected by the real pytest at a "base" and at a "head" that lost one test and renamed
another. Then KARMA's part is timed, median of several runs:

- parsing the JUnit report into item counts and findings (`parse_junit`, subtests folded);
- reading both collections (`collected_ids`, `collected_count`) and naming what the head
  lost (`missing`) — target, all of it: <= 2 s;

beside two baselines measured in the same run: a plain `ElementTree.parse` of the same
report (what reading the XML costs at all), and pytest's own time for the run. Then the
whole tests gate runs once on the host on that change (head collection and run, base
collection in a worktree): the CPU time of KARMA's own process in it (children
excluded) against the same target, and beside it the wall difference with the same
three pytest runs alone (git and the base worktree included; noisy on a busy machine).

Last, the per-task test selection (`karma.testselect.affected_tests`) on a tree of 5,000
modules, each importing the one before, and a test file for each: a change to the first
module reaches all 5,000 tests.

    .venv/bin/python bench/bench_junit.py [--tests 20000] [--runs 5] [--no-gate]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

from karma.config import KarmaConfig
from karma.gates import GateContext, load_suite, run_suite
from karma.gates.junit import collected_count, collected_ids, missing, parse_junit
from karma.testselect import affected_tests

TARGET_S = 2.0
FILES = 20
SUBTESTS = 10
COLLECT = ("--collect-only", "--verbosity=-1")


def functions(count: int, offset: int) -> str:
    tests = []
    for i in range(offset, offset + count):
        body = "assert i == 0, 'off by one'" if i % 500 == 7 else "assert i == i"
        skip = "@pytest.mark.skip(reason='not here')\n" if i % 1000 == 3 else ""
        tests.append(f"{skip}def test_function_{i}():\n    i = {i if i % 500 != 7 else 1}\n"
                     f"    {body}\n")  # fmt: skip
    return "import pytest\n\n\n" + "\n\n".join(tests)


def parametrized(count: int) -> str:
    return (
        "import pytest\n\n\n"
        f"@pytest.mark.parametrize('n', range({count}))\n"
        "def test_param(n):\n    assert n % 997 != 500, f'{n} is unlucky'\n"
    )


def with_subtests(count: int) -> str:
    return (
        f"def test_each(subtests):\n    for k in range({SUBTESTS}):\n"
        "        with subtests.test(k=k):\n            assert k % 4 != 3\n\n\n"
        + parametrized(count - 1)
    )


def make_suite(root: Path, total: int) -> None:
    per_file = total // FILES
    root.mkdir()
    (root / "pytest.ini").write_text("[pytest]\n")
    (root / "requirements.txt").write_text("")  # a Python project, for the gate's stack
    for index in range(FILES):
        count = per_file + (total - per_file * FILES if index == FILES - 1 else 0)
        if index < FILES // 2:
            text = functions(count, index * per_file)
        elif index < FILES - 1:
            text = parametrized(count)
        else:
            text = with_subtests(count)
        (root / f"test_suite_{index:02d}.py").write_text(text)


def pytest(root: Path, *args: str) -> tuple[str, float]:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=root, capture_output=True, text=True, check=False,
    )  # fmt: skip
    return done.stdout, time.monotonic() - started


def median(runs: int, work: Callable[[], object]) -> float:
    times = []
    for _ in range(runs):
        started = time.monotonic()
        work()
        times.append(time.monotonic() - started)
    return statistics.median(times)


def whole_gate(root: Path) -> tuple[float, float, str]:
    """The tests gate on the working tree of `root` against its HEAD, on the host: its
    wall time, the CPU time of KARMA's own process (children excluded), its summary."""
    from karma.recipes import detect_stack

    base = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, check=True,
                          capture_output=True, text=True).stdout.strip()  # fmt: skip
    settings = {"where": "host", "timeout_s": 600}
    ctx = GateContext(repo=root, base=base, config=KarmaConfig(), stack=detect_stack(root))
    started, cpu = time.monotonic(), time.process_time()
    result = run_suite(ctx, load_suite(overrides={"tests": settings}).only(("tests",)))
    gate = result.result("tests")
    assert gate is not None
    own = time.process_time() - cpu
    return time.monotonic() - started, own, f"{gate.status}: {gate.summary}"


def selection(runs: int, modules: int = 5000) -> None:
    files = {"src/pkg/__init__.py": ""}
    for i in range(modules):
        files[f"src/pkg/m{i}.py"] = f"from pkg import m{i - 1}\n" if i else "X = 1\n"
        files[f"tests/test_m{i}.py"] = f"from pkg.m{i} import *\n\ndef test_m():\n    pass\n"
    chosen = affected_tests(["src/pkg/m0.py"], files)
    took = median(runs, lambda: affected_tests(["src/pkg/m0.py"], files))
    print(
        f"test selection on {len(files):,} files: {len(chosen or ()):,} tests reached, "
        f"median {took:6.3f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tests", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-gate", action="store_true", help="skip the whole-gate run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="karma-bench-junit-") as tmp:
        root = Path(tmp) / "suite"
        make_suite(root, args.tests)
        for command in (("init", "-q", "-b", "main"), ("add", "-A"),
                        ("-c", "user.name=b", "-c", "user.email=b@example.com", "commit", "-qm",
                         "base")):  # fmt: skip
            subprocess.run(["git", *command], cwd=root, check=True)
        report = Path(tmp) / "junit.xml"
        _, run_s = pytest(root, "-q", f"--junitxml={report}")
        base_out, base_collect_s = pytest(root, *COLLECT)
        first = root / "test_suite_00.py"
        first.write_text(
            first.read_text()
            .replace("def test_function_0()", "def test_function_zero()")
            .replace("def test_function_1():\n    i = 1\n    assert i == i\n", "")
        )
        head_out, head_collect_s = pytest(root, *COLLECT)
        counts, findings = parse_junit(report, root)
        cases = sum(1 for _, e in ET.iterparse(report) if e.tag == "testcase")
        base_ids, head_ids = collected_ids(base_out), collected_ids(head_out)
        assert base_ids is not None and head_ids is not None
        print(
            f"suite: {counts.tests:,} test items ({cases:,} <testcase> elements, subtests "
            f"included), {counts.failures} failed, {counts.skipped} skipped; "
            f"{len(findings)} findings; report {report.stat().st_size / 1e6:.1f} MB"
        )
        print(f"collections: base {len(base_ids):,} items, head {len(head_ids):,}; head lost: "
              f"{missing(base_ids, head_ids)}")  # fmt: skip

        def ours() -> None:
            parse_junit(report, root)
            collected_count(base_out), collected_count(head_out)
            missing(base_ids, head_ids)

        parse_s = median(args.runs, lambda: parse_junit(report, root))
        compare_s = median(args.runs, lambda: missing(*map(collected_ids, (base_out, head_out))))
        total_s = median(args.runs, ours)
        floor_s = median(args.runs, lambda: ET.parse(report))
        verdict = "ok" if total_s <= TARGET_S else "OVER"
        print(f"parse_junit                median {parse_s:6.3f} s")
        print(f"collections + missing      median {compare_s:6.3f} s")
        print(f"KARMA's own time, in all   median {total_s:6.3f} s  "
              f"(target <= {TARGET_S} s: {verdict})")  # fmt: skip
        print(f"  baseline: ElementTree.parse of the same report, median {floor_s:6.3f} s; "
              f"pytest's own run of the suite {run_s:6.1f} s "
              f"(KARMA adds {100 * total_s / run_s:.1f}%)")  # fmt: skip
        selection(args.runs)
        if not args.no_gate:
            gate_s, cpu_s, summary = whole_gate(root)
            _, head_run_s = pytest(root, "-q", f"--junitxml={Path(tmp) / 'head.xml'}")
            alone_s = head_run_s + head_collect_s + base_collect_s
            print(f"whole tests gate on the host {gate_s:6.1f} s  [{summary}]")
            print(f"  KARMA's process CPU in it {cpu_s:6.3f} s (target <= {TARGET_S} s: "
                  f"{'ok' if cpu_s <= TARGET_S else 'OVER'}); the three pytest runs alone "
                  f"{alone_s:6.1f} s, wall difference {gate_s - alone_s:+.1f} s")  # fmt: skip


if __name__ == "__main__":
    main()
