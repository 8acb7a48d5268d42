"""Fixtures of the gate tests: the offline OSV endpoint and real git repositories."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from karma.advisories import AdvisoryServer, serving

# The whole PyPA database when a local mirror is beside the clone, else the advisories
# the project ships for its demo (real entries of requests, urllib3, idna, jinja2, pyyaml).
_MIRROR = Path(__file__).resolve().parents[3] / "shared" / "advisories" / "pypa-advisory-database"
ADVISORIES = (
    _MIRROR if _MIRROR.is_dir() else Path(__file__).resolve().parents[2] / "examples" / "advisories"
)
PYTEST = f"{sys.executable} -m pytest -q -p no:cacheprovider"
# Values shaped like real credentials, made up for the tests (none is a live key).
FAKE_AWS_KEY = "AKIA" + "Z7QWERTYUIOPASDF"
FAKE_ANTHROPIC_KEY = "sk-ant-api03-" + "Xq9fT2kLm8Np4Rs7Vw1Yz3Bc6Df0Gh5Jk2Lm9Np4Qr7St"


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture(scope="session")
def osv() -> Iterator[AdvisoryServer]:
    if not ADVISORIES.is_dir():
        pytest.fail(f"{ADVISORIES} is missing")
    with serving(ADVISORIES) as server:
        yield server


@pytest.fixture(autouse=True)
def _no_real_models(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test may reach a real provider or read the developer's KARMA_* settings."""
    for name in (
        "ANTHROPIC_API_KEY",
        "OPENAI_API_KEY",
        "ANTHROPIC_BASE_URL",
        "OPENAI_BASE_URL",
        "KARMA_HOME",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("KARMA_OSV_URL", raising=False)


def make_repo(root: Path, files: dict[str, str], karma_toml: str = "") -> Path:
    """A git repository whose single commit (the base) holds `files`."""
    root.mkdir(parents=True, exist_ok=True)
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.email", "dev@example.com")
    git(root, "config", "user.name", "Dev")
    if karma_toml:
        files = {**files, "karma.toml": karma_toml}
    write(root, files)
    git(root, "add", "-A")
    git(root, "commit", "-qm", "base")
    return root


def write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def gate_toml(extra: str = "") -> str:
    return (
        f'[gates.overrides.tests]\ncommand = "{PYTEST}"\nwhere = "host"\ntimeout_s = 120\n{extra}'
    )
