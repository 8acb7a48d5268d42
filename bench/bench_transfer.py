"""What moving an attempt to a worker and back costs, against a plain `git bundle create`.

A repository of FILES files is made with real git. Each round is what one remote attempt
adds to a build: the coordinator packs the build tip since the tip the worker already
has, the worker takes it in, makes one commit (not timed: that is the attempt's work),
packs it since the tip, and the coordinator verifies and stores it. The baseline is
`git bundle create` of the whole repository, run in the same process. Target (issue 17):
the transfer's overhead per attempt ≤ 300 ms for 2,000 files.

    .venv/bin/python bench/bench_transfer.py [--files 2000] [--rounds 10]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from karma.hostgit import HostGit
from karma.transfer import accept_attempt, init_cache, pack, receive

IDENTITY = (("user.name", "bench"), ("user.email", "bench@example.invalid"))
TARGET_MS = 300.0


def _commit(git: HostGit, parent: str | None, files: dict[str, bytes], base: str = "") -> str:
    """A commit of `base`'s tree plus `files` (flat names), made with plumbing."""
    git = git.with_config(*IDENTITY)
    lines = []
    if base:
        lines = [ln + "\n" for ln in git.run("ls-tree", base).splitlines()]
    for name, body in files.items():
        sha = git.raw("hash-object", "-w", "--stdin", input=body).decode().strip()
        lines = [ln for ln in lines if not ln.endswith(f"\t{name}\n")]
        lines.append(f"100644 blob {sha}\t{name}\n")
    tree = git.raw("mktree", input="".join(lines).encode()).decode().strip()
    args = ["commit-tree", tree, "-m", "bench"] + (["-p", parent] if parent else [])
    return git.run(*args)


def _seed(git: HostGit, n_files: int) -> str:
    """A first commit of `n_files` small modules, written in one `fast-import`."""
    stream = [
        "commit refs/heads/main",
        "committer bench <b@example.invalid> 0 +0000",
        "data 4",
        "seed",
    ]
    for i in range(n_files):
        body = f'"""Module {i}."""\n\n\ndef value_{i}() -> int:\n    return {i}\n'.encode()
        stream += [f"M 100644 inline pkg/mod_{i:05d}.py", f"data {len(body)}", body.decode()]
    git.raw("fast-import", "--quiet", input=("\n".join(stream) + "\n").encode())
    return git.run("rev-parse", "refs/heads/main")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        coordinator = init_cache(root / "coordinator.git")
        worker = init_cache(root / "worker.git")
        tip = _seed(coordinator, args.files)

        baseline = []
        for i in range(args.rounds):
            start = time.perf_counter()
            coordinator.run("bundle", "create", "-q", str(root / f"full{i}.bundle"), "main")
            baseline.append((time.perf_counter() - start) * 1000)

        receive(worker, pack(coordinator, tip, root / "first.bundle"))
        have = tip
        overhead, out_sizes, back_sizes = [], [], []
        for i in range(args.rounds):
            # The build moved on since the worker's last attempt: one integrated commit.
            tip = _commit(coordinator, tip, {f"integrated_{i}.py": b"x = 1\n"}, base=tip)
            start = time.perf_counter()
            out = pack(coordinator, tip, root / f"out{i}.bundle", since=[have])
            receive(worker, out)
            sent = time.perf_counter()
            head = _commit(worker, tip, {f"attempt_{i}.py": b"def f():\n    return 1\n"}, base=tip)
            resumed = time.perf_counter()
            back = pack(worker, head, root / f"back{i}.bundle", since=[tip])
            accept_attempt(coordinator, back, parent=tip)
            done = time.perf_counter()
            overhead.append(((sent - start) + (done - resumed)) * 1000)
            out_sizes.append(out.stat().st_size)
            back_sizes.append(back.stat().st_size)
            tip, have = head, head

        full_size = (root / "full0.bundle").stat().st_size
        print(f"repository: {args.files} files, {args.rounds} rounds")
        base_ms = statistics.median(baseline)
        print(
            f"baseline  git bundle create (whole repo): median {base_ms:7.1f} ms  {full_size:,} B"
        )
        med = statistics.median(overhead)
        print(
            f"transfer  out + verify back, per attempt: median {med:7.1f} ms"
            f"  out {statistics.median(out_sizes):,.0f} B,"
            f" back {statistics.median(back_sizes):,.0f} B"
            f"  (max {max(overhead):.1f} ms)"
        )
        verdict = "met" if med <= TARGET_MS else "NOT met"
        print(f"target    ≤ {TARGET_MS:.0f} ms per attempt: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
