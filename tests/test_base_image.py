"""`karma.base_image`: the machine's apt sources, and a pull that fails fast with no registry."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from karma.base_image import (
    AptSource,
    apt_sources,
    local_image,
    primary_source,
    pull,
    suite_of,
)
from karma.errors import EnvironmentProblem

DEB822 = """\
Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main contrib
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
"""


def test_deb822_sources(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(DEB822)
    sources = apt_sources(tmp_path)
    keyring = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
    assert sources == [
        AptSource("http://deb.debian.org/debian", "bookworm", ("main", "contrib"), keyring),
        AptSource("http://deb.debian.org/debian", "bookworm-updates", ("main", "contrib"), keyring),
        AptSource("http://deb.debian.org/debian-security", "bookworm-security", ("main",)),
    ]
    assert primary_source(sources).suite == "bookworm"


def test_one_line_sources_come_first(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list").write_text(
        "# deb http://old.example/debian buster main\n"
        "deb-src http://archive.ubuntu.com/ubuntu noble main\n"
        "deb http://security.ubuntu.com/ubuntu noble-security main\n"
        "deb [arch=amd64 signed-by=/etc/apt/keyrings/ubuntu.gpg] http://archive.ubuntu.com/ubuntu"
        " noble main universe  # the mirror\n"
    )
    (tmp_path / "sources.list.d" / "later.sources").write_text(DEB822)
    sources = apt_sources(tmp_path)
    assert sources[0].suite == "noble-security"
    main = primary_source(sources)
    assert main == AptSource(
        "http://archive.ubuntu.com/ubuntu",
        "noble",
        ("main", "universe"),
        Path("/etc/apt/keyrings/ubuntu.gpg"),
    )
    assert local_image(main.suite) == "karma/base:noble"


def test_no_source_to_build_from(tmp_path: Path) -> None:
    assert apt_sources(tmp_path) == []
    with pytest.raises(EnvironmentProblem) as caught:
        primary_source([AptSource("http://x/debian-security", "bookworm-security", ("main",))])
    assert caught.value.exit_code == 3 and "KARMA_BASE_IMAGE" in str(caught.value.tip)


def test_the_images_setup_builds() -> None:
    assert suite_of("karma/base:bookworm") == "bookworm"
    assert suite_of("python:3.12-slim") is None
    assert suite_of("karma/base:bookworm; rm -rf /") is None
    assert suite_of("evil/karma/base:bookworm") is None


@pytest.mark.docker
def test_pull_from_no_registry_fails_fast() -> None:
    started = time.monotonic()
    why = pull("127.0.0.1:9/karma/none:1")  # nothing listens on port 9
    assert why is not None and "127.0.0.1:9" in why
    assert time.monotonic() - started < 15
