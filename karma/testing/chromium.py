"""Debian's headless Chromium, as the report test and the screenshot script run it.

Offline and quiet: the background-networking flags keep it from trying to reach the
outside (refused on a closed network), and a fresh profile per run.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--enable-logging=stderr",
    "--v=0",
)


def find_chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def run_chromium(exe: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Chromium with `args` (a page, `--screenshot=…`, `--dump-dom`), a profile of its own."""
    profile.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [exe, *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def page_errors(stderr: str) -> list[str]:
    """What the page itself reported (console messages, CSP refusals), not Chromium's noise."""
    marks = ("CONSOLE", "Uncaught", "Refused to", "Content Security Policy", "net::ERR_")
    return [line for line in stderr.splitlines() if any(mark in line for mark in marks)]
