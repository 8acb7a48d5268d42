"""Cost of one agent tool call on the host (issue 10: confined file I/O must stay cheap).

A worktree of `--files` small Python files in a few packages; each tool is called
`--calls` times through `Toolbox.call` and the median and p95 per call are printed, in
microseconds. `run` uses a runner that returns at once, so what is measured is the host's
own work around it (output shaping, the worktree size check: a walk of the worktree).

    python bench/bench_tools.py [--files 2000] [--calls 300]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from karma.sandbox.interface import ExecResult
from karma.tools import Toolbox


def _runner(command: str, *_limits: Any) -> ExecResult:
    return ExecResult(command, 0, "1 passed", 0.0)


def _tree(root: Path, files: int) -> None:
    for index in range(files):
        package = root / f"pkg{index % 20}" / f"sub{index % 7}"
        package.mkdir(parents=True, exist_ok=True)
        (package / f"mod{index}.py").write_text(
            f"def f{index}(x):\n    return x + {index}\n" * 20, encoding="utf-8"
        )
    (root / "app.py").write_text("import os\n\n\ndef main():\n    return 1\n" * 30)


def _time(box: Toolbox, name: str, args: dict[str, Any], calls: int) -> list[float]:
    spent = []
    for _ in range(calls):
        start = time.perf_counter()
        output = box.call(name, args)
        spent.append((time.perf_counter() - start) * 1e6)
        assert not output.is_error, output.content
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "wt"
        root.mkdir()
        _tree(root, args.files)
        try:  # the worktree size check after `run` (absent before issue 10)
            from karma.footprint import Footprint

            box = Toolbox(root, _runner, output_chars=8000, footprint=Footprint(root, 200))
        except ImportError:
            box = Toolbox(root, _runner, output_chars=8000)
        cases: list[tuple[str, dict[str, Any], int]] = [
            ("read_file", {"path": "pkg3/sub3/mod3.py"}, args.calls),
            ("write_file", {"path": "new/deep/b.py", "content": "x = 1\n" * 200}, args.calls),
            ("edit_file", {"path": "app.py", "old": "def main", "new": "def main"}, args.calls),
            ("list_files", {"path": "pkg3"}, args.calls),
            ("search_code", {"pattern": r"return x \+ 17\b", "path": "pkg17"}, args.calls // 3),
            ("run", {"command": "pytest -q"}, args.calls // 3),
        ]
        print(f"{args.files} files; microseconds per call")
        for name, call_args, calls in cases:
            if name == "edit_file":  # exactly one match, each time
                (root / "app.py").write_text("import os\n\n\ndef main():\n    return 1\n")
            spent = _time(box, name, call_args, max(calls, 5))
            p95 = statistics.quantiles(spent, n=20)[-1]
            print(f"  {name:12} median {statistics.median(spent):8.0f}   p95 {p95:8.0f}")


if __name__ == "__main__":
    main()
