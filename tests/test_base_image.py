"""`karma.base_image`: the machine's apt sources, and a pull that fails fast with no registry."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from karma.base_image import (
    AptSource,
    apt_sources,
    build,
    local_image,
    primary_source,
    pull,
    suite_of,
)
from tests.conftest import IN_CI, unavailable

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
    assert primary_source([]) is None
    security = AptSource("http://x/debian-security", "bookworm-security", ("main",))
    assert primary_source([security]) is None


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


@pytest.mark.docker
@pytest.mark.slow
def test_debootstrap_builds_a_working_base_image(tmp_path: Path) -> None:
    """The whole build (about 3 minutes, a 300 MB image): always under CI=true, else opt in
    with KARMA_TEST_DEBOOTSTRAP=1.
    It builds `karma/base:trixie` from this machine's apt source and removes it afterwards."""
    import os
    import shutil

    import docker

    from karma.sandbox.docker import DockerBackend

    if not IN_CI and os.environ.get("KARMA_TEST_DEBOOTSTRAP") != "1":
        pytest.skip("set KARMA_TEST_DEBOOTSTRAP=1 (as root, with debootstrap) to build an image")
    if shutil.which("debootstrap") is None:
        unavailable("debootstrap is not installed (karma setup installs it when it builds)")
    image = "karma/base:trixie"
    backend = DockerBackend()
    if backend.has_image(image):
        unavailable(f"{image} exists already; the test only removes an image it made")
    lines: list[str] = []
    source = primary_source(apt_sources())
    assert source is not None
    try:
        build(backend, image, source, log_file=tmp_path / "log", say=lines.append)
        client = docker.from_env()
        out = client.containers.run(
            image,
            [
                "sh",
                "-c",
                "python3 -m venv /tmp/v && git --version"
                " && python3 -m pip --version && cat /etc/pip.conf",
            ],
            remove=True,
            network_mode="none",
        )
        labels = client.images.get(image).labels
        client.close()
        assert b"git version" in out and b"cert = /etc/ssl/certs/ca-certificates.crt" in out
        assert labels["karma.setup"].startswith("debootstrap trixie ")
        assert any("building karma/base:trixie" in line for line in lines)
    finally:
        if backend.has_image(image):
            backend.client.images.remove(image, force=True)
