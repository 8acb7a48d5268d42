"""The HTML report opens in Debian's headless Chromium, offline, without errors, and a
screenshot of it is taken (bench/report_screenshot.py does the same for a person to look at).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from runfixture import FinishedRun

from karma.report import write_run_report
from karma.testing.chromium import find_chromium, page_errors, run_chromium

CHROMIUM = find_chromium()


@pytest.fixture
def chromium() -> str:
    if CHROMIUM is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("chromium is not installed (.ci/run installs Debian's chromium)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return CHROMIUM


def run(chromium: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_chromium(chromium, tmp_path / "profile", *args)


def test_report_renders_in_headless_chromium(
    chromium: str, finished_run: FinishedRun, tmp_path: Path
) -> None:
    html = write_run_report(finished_run.store, finished_run.run_id, tmp_path / "reports")
    dom = run(chromium, tmp_path, "--dump-dom", html.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert page_errors(dom.stderr) == []
    assert dom.stdout.count("<svg") == 2 and 'id="timeline"' in dom.stdout
    assert "<script>alert" not in dom.stdout  # the model's script stayed text

    png = tmp_path / "report.png"
    shot = run(chromium, tmp_path, f"--screenshot={png}", "--window-size=1280,1400", html.as_uri())
    assert shot.returncode == 0 and png.exists()
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000


def test_report_shows_each_tasks_change_and_the_tests_counts(
    chromium: str, finished_run: FinishedRun, tmp_path: Path
) -> None:
    """Per task the files with lines added and removed and the diff, collapsed; a file
    whose content is a script shows as text; the tests gate's counts; cost vs forecast."""
    repo, store = finished_run.repo, finished_run.store
    git = lambda *a: subprocess.run(  # noqa: E731
        ["git", *a], cwd=repo, check=True, capture_output=True, text=True
    ).stdout.strip()
    git("switch", "-q", "-c", "evil", finished_run.commits["t3"])
    key = "sk-ant-api03-" + "Q7x" * 20  # a key a model wrote into a file: redacted in the diff
    evil = f"<script>alert('diff')</script>\n<img src=x onerror=alert(2)> {key}\n"
    (repo / "page.html").write_text(evil)
    git("add", "page.html")
    git("-c", "user.name=K", "-c", "user.email=k@l", "commit", "-qm", "t4 page")
    store.upsert_task(finished_run.run_id, "t4", commit_sha=git("rev-parse", "HEAD"))
    git("switch", "-q", "main")

    html = write_run_report(store, finished_run.run_id, tmp_path / "reports", repo=repo)
    dom = run(chromium, tmp_path, "--dump-dom", html.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert page_errors(dom.stderr) == []
    text = dom.stdout
    assert text.count("<details>") == 4  # one collapsed diff per task with a commit
    assert "inventory/csv_export.py" in text and "page.html" in text
    assert '<td class="num add">+2</td>' in text  # page.html: two lines added
    assert "&lt;script&gt;alert('diff')&lt;/script&gt;" in text
    assert "<script>alert('diff')" not in text and '<img src="x"' not in text
    assert key not in text and "Q7xQ7xQ7x" not in text
    assert "12 tests: 11 passed" in text  # the tests gate's one-line result
    assert "<td>12</td><td>11</td><td>0</td><td>0</td><td>1</td><td>10</td>" in text
    assert "(forecast $" in text

    png = tmp_path / "changes.png"
    shot = run(chromium, tmp_path, f"--screenshot={png}", "--window-size=1280,3200", html.as_uri())
    assert shot.returncode == 0 and png.exists()
    if os.environ.get("KARMA_KEEP_SCREENSHOT"):
        Path(os.environ["KARMA_KEEP_SCREENSHOT"]).write_bytes(png.read_bytes())
