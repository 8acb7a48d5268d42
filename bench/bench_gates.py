"""Bench: the gates on a 20-file change in a repository of more than 50k lines.

The repository is a copy of an installed package's source (networkx, ~190k lines) in a
temporary git repo; the change (20 files) edits 18 of its modules, adds one with an
`eval` on input, and pins 20 requirements, two of them vulnerable.
Prints the median of several runs of:

- sast (semgrep, native CLI) — target <= 5 s; beside it, a baseline measured in the
  same run: the same scan through semgrep's Python CLI (`native = false`);
- audit (pip-audit against the loopback OSV endpoint, warm) — target <= 2 s;
- secrets and approval;

and the total gate overhead, the test run excluded.

    .venv/bin/python bench/bench_gates.py [--runs 5] [--advisories DIR]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import networkx

from karma.advisories import serving
from karma.config import KarmaConfig
from karma.gates import GateContext, load_suite, run_suite

SAST_TARGET_S = 5.0
AUDIT_TARGET_S = 2.0
PINS = [
    "requests==2.19.0",
    "urllib3==1.26.18",
    "idna==3.7",
    "certifi==2024.7.4",
    "charset-normalizer==3.3.2",
    "click==8.1.7",
    "flask==3.0.3",
    "werkzeug==3.0.3",
    "jinja2==3.1.4",
    "markupsafe==2.1.5",
    "itsdangerous==2.2.0",
    "pyyaml==5.3",
    "packaging==24.1",
    "attrs==24.2.0",
    "six==1.16.0",
    "python-dateutil==2.9.0",
    "pytz==2024.1",
    "typing-extensions==4.12.2",
    "zipp==3.20.2",
    "colorama==0.4.6",
]


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout


def make_repo(root: Path) -> tuple[Path, int]:
    source = Path(networkx.__file__).parent
    repo = root / "repo"
    shutil.copytree(source, repo / "networkx", ignore=shutil.ignore_patterns("__pycache__"))
    (repo / "requirements.txt").write_text("\n".join(PINS[2:]) + "\n")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "bench@example.com")
    git(repo, "config", "user.name", "Bench")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base")
    lines = sum(
        len(p.read_text(encoding="utf-8", errors="replace").splitlines())
        for p in repo.rglob("*.py")
    )
    files = sorted((repo / "networkx" / "algorithms").glob("*.py"))[:18]
    for i, path in enumerate(files):
        path.write_text(path.read_text() + f"\n\ndef _bench_added_{i}(x):\n    return x + {i}\n")
    (repo / "networkx" / "bench_eval.py").write_text("def calc():\n    return eval(input())\n")
    (repo / "requirements.txt").write_text("\n".join(PINS) + "\n")
    return repo, lines


def verdict(value: float, target: float) -> str:
    return "OK" if value <= target else "OVER TARGET"


def median_of(runs: int, ctx: GateContext, gate: str, **overrides: object) -> tuple[float, str]:
    suite = load_suite(overrides={gate: dict(overrides)} if overrides else None).only((gate,))
    times, summary = [], ""
    for _ in range(runs):
        result = run_suite(ctx, suite).result(gate)
        assert result is not None
        if result.status == "error":
            raise SystemExit(f"{gate} errored: {result.summary}")
        times.append(result.duration_s)
        summary = result.summary
    return statistics.median(times), summary


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    default_dir = (
        Path(__file__).resolve().parents[2] / "shared" / "advisories" / "pypa-advisory-database"
    )
    parser.add_argument("--advisories", type=Path, default=default_dir)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="karma-bench-gates-") as tmp,
        serving(args.advisories) as osv,
    ):
        repo, lines = make_repo(Path(tmp))
        changed = len(git(repo, "status", "--porcelain").splitlines())
        print(f"repository: {lines:,} lines of Python; change: {changed} files")
        config = KarmaConfig.model_validate({"gates": {"audit": {"osv_url": osv.url}}})
        ctx = GateContext(repo=repo, base=git(repo, "rev-parse", "HEAD").strip(), config=config)
        run_suite(ctx, load_suite().only(("audit",)))  # warm: the endpoint parses each package once
        sast, sast_summary = median_of(args.runs, ctx, "sast")
        classic, _ = median_of(max(1, args.runs // 2), ctx, "sast", native=False)
        audit, audit_summary = median_of(args.runs, ctx, "audit")
        secrets, _ = median_of(args.runs, ctx, "secrets")
        approval, _ = median_of(args.runs, ctx, "approval")
        print(
            f"sast      median {sast:6.2f} s  "
            f"(target <= {SAST_TARGET_S} s: {verdict(sast, SAST_TARGET_S)})"
            f"  [{sast_summary}]"
        )
        print(
            f"  baseline: semgrep Python CLI on the same change, median {classic:6.2f} s "
            f"({classic / sast:.1f}x the native run)"
        )
        print(
            f"audit     median {audit:6.2f} s  (target <= {AUDIT_TARGET_S} s, warm: "
            f"{verdict(audit, AUDIT_TARGET_S)})  [{audit_summary}]"
        )
        print(f"secrets   median {secrets:6.2f} s")
        print(f"approval  median {approval:6.2f} s")
        started = time.monotonic()
        result = run_suite(ctx, load_suite().only(("secrets", "sast", "audit", "approval")))
        total = time.monotonic() - started
        print(
            "total gate overhead, test run excluded "
            "(one suite run: secrets, sast, audit, approval): "
            f"{total:.2f} s -> {result.status}"
        )


if __name__ == "__main__":
    main()
