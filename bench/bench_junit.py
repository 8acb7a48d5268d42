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
report (what reading the XML costs at all), and pytest's own time for the run.

    .venv/bin/python bench/bench_junit.py [--tests 20000] [--runs 5]
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

from karma.gates.junit import collected_count, collected_ids, missing, parse_junit

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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tests", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="karma-bench-junit-") as tmp:
        root = Path(tmp) / "suite"
        make_suite(root, args.tests)
        report = Path(tmp) / "junit.xml"
        _, run_s = pytest(root, "-q", f"--junitxml={report}")
        base_out, _ = pytest(root, *COLLECT)
        first = root / "test_suite_00.py"
        first.write_text(
            first.read_text()
            .replace("def test_function_0()", "def test_function_zero()")
            .replace("def test_function_1():\n    i = 1\n    assert i == i\n", "")
        )
        head_out, _ = pytest(root, *COLLECT)
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


if __name__ == "__main__":
    main()
