"""Render a run's HTML report and take a screenshot of it with Debian's headless Chromium.

    .venv/bin/python bench/report_screenshot.py [--db .karma/karma.db --run RUN_ID] [--out DIR]

Without --db it builds the record fixture of tests/record (a finished four-task run with a
failed attempt, parallel tasks, gates and an escalation) in a temporary repository. It
prints the paths of the HTML and the PNG, and what Chromium said on stderr (nothing
expected); the exit code is 1 if Chromium failed or the PNG is missing.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from karma.testing.chromium import find_chromium, page_errors, run_chromium

HERE = Path(__file__).resolve().parent


def screenshot(html: Path, png: Path, size: str = "1280,1600") -> subprocess.CompletedProcess[str]:
    exe = find_chromium()
    if exe is None:
        raise SystemExit("chromium is not installed (apt-get install chromium)")
    with tempfile.TemporaryDirectory(prefix="karma-chromium-") as profile:
        return run_chromium(
            exe, Path(profile), f"--screenshot={png}", f"--window-size={size}",
            html.resolve().as_uri(),
        )  # fmt: skip


def demo_store(work: Path) -> tuple[Path, str]:
    sys.path.insert(0, str(HERE.parent / "tests" / "record"))
    from runfixture import git, make_run

    from karma.store import Store

    repo = work / "repo"
    repo.mkdir()
    git(repo, "init", "-qb", "main")
    git(repo, "config", "user.email", "dev@example.com")
    git(repo, "config", "user.name", "Dev")
    (repo / "README.md").write_text("# demo\n")
    (repo / ".gitignore").write_text(".karma/\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "initial")
    db = repo / ".karma" / "karma.db"
    store = Store(db)
    run = make_run(repo, store)
    store.close()
    return db, run.run_id


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path)
    parser.add_argument("--run")
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "karma-report")
    args = parser.parse_args()
    from karma.store import Store

    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        db, run_id = (args.db, args.run) if args.db else demo_store(Path(work))
        store = Store(db)
        if run_id is None:
            run_id = store.runs(1)[0].id
        from karma.report import write_run_report

        html = write_run_report(store, run_id, args.out)
        store.close()
    png = args.out / f"{run_id}.png"
    done = screenshot(html, png)
    errors = page_errors(done.stderr)
    print(f"html {html} ({html.stat().st_size} bytes)")
    print(f"png  {png} ({png.stat().st_size if png.exists() else 0} bytes)")
    print(f"chromium exit {done.returncode}; console errors: {len(errors)}")
    for line in errors:
        print("  " + line)
    return 0 if done.returncode == 0 and png.exists() else 1


if __name__ == "__main__":
    raise SystemExit(main())
