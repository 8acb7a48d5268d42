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
