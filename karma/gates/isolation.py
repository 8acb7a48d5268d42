"""How the tests gate runs pytest so that the change under check cannot configure it.

A `python -m pytest ...` (or `pytest ...`) command is rebuilt as
`python -I -B -m pytest ... -c <base config> --rootdir=<tree> --confcutdir=<tree>
-p no:cacheprovider -o pythonpath=<...>`:

- `-I`: the tree is not on `sys.path` when pytest starts, so a repository `pytest.py`,
  `_pytest/` or `pluggy/` cannot shadow them, and no `PYTHON*` variable applies.
  The tree (and the base's `pythonpath` entries, and a `PYTHONPATH` the configured
  command sets) are put on `sys.path` by pytest itself once it is loaded (`-o
  pythonpath`), so root and src layouts import as they do with `python -m pytest`.
- `-c`: the configuration is the base commit's (its `pytest.toml`, `pytest.ini`,
  `[tool.pytest]`, `tox.ini [pytest]` or `setup.cfg [tool:pytest]`, found as pytest
  finds it, copied outside the tree) or an empty one: a head `addopts = -p evil`,
  `--co`, `-k`, `--deselect` or `python_files` change never applies.

The host-run environment is an allowlist, never the host's environment minus a few names.
"""

from __future__ import annotations

import configparser
import os
import re
import shlex
import shutil
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from karma.gates.change import git
from karma.gates.interface import GateContext, GateUnavailable
from karma.gates.junit import unittest_listing as listing

if TYPE_CHECKING:
    from karma.config import KarmaConfig

CONFIG_FILES = (
    "pytest.toml",
    ".pytest.toml",
    "pytest.ini",
    ".pytest.ini",
    "pyproject.toml",
    "tox.ini",
    "setup.cfg",
)
"""pytest's own precedence (`_pytest.config.findpaths.CONFIG_LOADERS_BY_NAME`)."""
HOST_ENV = ("PATH", "LANG", "LC_ALL", "TZ", "TMPDIR")
PYTHON = re.compile(r"python(\d+(\.\d+)*)?")
PYTEST_SCRIPTS = frozenset({"pytest", "py.test"})
PYTHON_FLAGS_WITH_VALUE = frozenset({"-W", "-X"})
JUNIT = "{junit}"
"""In a test command (a stack's `junit_command`): the path of the JUnit report it writes."""
SAFE_PATH = re.compile(r"[\w./-]+")
ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")


@dataclass(frozen=True)
class PytestCommand:
    """A configured test command that is plain pytest, taken apart."""

    env: tuple[tuple[str, str], ...]
    python: str | None
    """The interpreter named in the command; None for a bare `pytest`."""
    python_flags: tuple[str, ...]
    args: tuple[str, ...]


def _python_module(command: str) -> tuple[list[tuple[str, str]], list[str], str, list[str]] | None:
    """`[VAR=v ...] python [flags] -m <module> args...` taken apart: the assignments, the
    interpreter with its flags, the module and its arguments; a bare `pytest` script is
    module `pytest` with no interpreter. None for anything else."""
    try:
        words = shlex.split(command)
    except ValueError:
        return None
    env: list[tuple[str, str]] = []
    while words and ASSIGNMENT.match(words[0]):
        name, _, value = words.pop(0).partition("=")
        env.append((name, value))
    if not words:
        return None
    program = Path(words[0]).name
    if program in PYTEST_SCRIPTS:
        return env, [], "pytest", words[1:]
    if not PYTHON.fullmatch(program):
        return None
    python = [words[0]]
    rest = words[1:]
    while rest and rest[0] != "-m":
        flag = rest.pop(0)
        if not flag.startswith("-") or flag in ("-c", "-"):
            return None
        python.append(flag)
        if flag in PYTHON_FLAGS_WITH_VALUE and rest:
            python.append(rest.pop(0))
    if len(rest) < 2:
        return None
    return env, python, rest[1], rest[2:]


def parse_pytest(command: str) -> PytestCommand | None:
    """`command` taken apart when it is `[VAR=v ...] python [flags] -m pytest ...` or
    `[VAR=v ...] pytest ...`; None for anything else (a wrapper the gate cannot isolate)."""
    parts = _python_module(command)
    if parts is None or parts[2] not in PYTEST_SCRIPTS:
        return None
    env, python, _, args = parts
    interpreter = python[0] if python else None
    return PytestCommand(tuple(env), interpreter, tuple(python[1:]), tuple(args))


def unittest_listing(command: str, nonce: str) -> str | None:
    """The command that lists the tests `command` (`[VAR=v ...] python [flags] -m
    unittest ...`) would run, without running them (`karma.gates.junit`); None when
    `command` is not that."""
    parts = _python_module(command)
    if parts is None or parts[2] != "unittest":
        return None
    env, python, _, args = parts
    assignments = [f"{name}={shlex.quote(value)}" for name, value in env]
    return " ".join([*assignments, listing(python, tuple(args), nonce)])


@dataclass(frozen=True)
class BaseConfig:
    """The base commit's pytest configuration file (or an empty `pytest.ini`)."""

    name: str
    text: str
    pythonpath: tuple[str, ...] = ()
    """Its `pythonpath` entries, relative to the tree's root."""

    def write(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / self.name
        path.write_text(self.text, encoding="utf-8")
        return path


def _table(name: str, text: str) -> Mapping[str, Any] | None:
    """The pytest settings in a config file, None when it holds none (pytest then looks on)."""
    if name.endswith(".toml"):
        try:
            document = tomllib.loads(text)
        except tomllib.TOMLDecodeError:
            return {}  # broken at base too: pytest reports it
        if name != "pyproject.toml":
            return dict(document.get("pytest", {}))
        tool = document.get("tool", {}).get("pytest")
        if not isinstance(tool, dict):
            return None
        ini = tool.get("ini_options")
        return dict(ini) if isinstance(ini, dict) else tool
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(text)
    except configparser.Error:
        return {}
    section = "tool:pytest" if name == "setup.cfg" else "pytest"
    if parser.has_section(section):
        return dict(parser[section])
    return {} if name in ("pytest.ini", ".pytest.ini") else None


def base_config(ctx: GateContext) -> BaseConfig:
    """The configuration pytest would use at the base commit's root (the stack's folder,
    in a mixed repository)."""
    tree = ctx.base if ctx.folder in ("", ".") else f"{ctx.base}:{ctx.folder}"
    listing = git(ctx, "ls-tree", "-z", tree)
    blobs = {}
    for entry in filter(None, listing.split("\0")):
        meta, _, path = entry.partition("\t")
        if meta.split()[0] in ("100644", "100755"):
            blobs[path] = True
    for name in CONFIG_FILES:
        if name not in blobs:
            continue
        text = git(ctx, "show", f"{ctx.base}:{ctx.at_folder(name)}")
        table = _table(name, text)
        if table is None:
            continue
        raw = table.get("pythonpath", ())
        entries = shlex.split(raw) if isinstance(raw, str) else [str(p) for p in raw]
        return BaseConfig(name, text, tuple(entries))
    return BaseConfig("pytest.ini", "")


def _interpreter(command: PytestCommand, sandboxed: bool) -> str:
    if command.python is not None:
        return command.python
    if sandboxed:
        return "python"
    script = shutil.which("pytest")
    beside = Path(script).parent / "python" if script else None
    return str(beside) if beside is not None and beside.exists() else "python3"


def isolated(
    command: PytestCommand,
    *,
    config_file: str,
    rootdir: str,
    pythonpath: Sequence[str],
    extra: Sequence[str] = (),
    sandboxed: bool,
    installed: Sequence[str] = (),
) -> str:
    """The shell command that runs `command` isolated from the tree (see the module doc);
    `installed`: where the sandbox installed the project (`karma.sandbox.project`)."""
    env = dict(command.env)
    from_env = [p for p in env.pop("PYTHONPATH", "").split(os.pathsep) if p]
    root = rootdir.rstrip("/") or "/"
    paths = [p if p.startswith("/") else f"{root}/{p}" for p in (*pythonpath, *from_env)]
    paths += installed
    argv = [
        _interpreter(command, sandboxed),
        *command.python_flags,
        "-I",
        "-B",
        "-m",
        "pytest",
        *command.args,
        *extra,
        "-c",
        config_file,
        f"--rootdir={root}",
        f"--confcutdir={root}",
        "-p",
        "no:cacheprovider",
        "-o",
        "pythonpath=" + " ".join(shlex.quote(p) for p in (*paths, root)),
    ]
    assignments = [f"{name}={shlex.quote(value)}" for name, value in env.items()]
    return " ".join([*assignments, shlex.join(argv)])


def host_env(
    config: KarmaConfig, home: Path, environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment of a host test run: a few neutral variables, a private HOME, and
    the host variables the user allowlisted (`sandbox.env_allowlist`)."""
    environ = os.environ if environ is None else environ
    env = {n: environ[n] for n in (*HOST_ENV, *config.sandbox.env_allowlist) if n in environ}
    env["HOME"] = str(home)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


@dataclass(frozen=True)
class Invocation:
    """The configured command and, for plain pytest, how to run it isolated."""

    command: str
    parsed: PytestCommand | None
    config: BaseConfig | None
    scratch: Path
    reverted: Mapping[str, str | None]
    """Changed files with outcome hooks: their base text (None: new), run instead."""

    def revert(self, copy: Path) -> None:
        """Put the base version of each hooked file into a throwaway copy, so the run
        reports the real outcomes (the change is failed for its hooks regardless)."""
        for rel, text in self.reverted.items():
            target = copy / rel
            if target.is_symlink() or target.exists():
                target.unlink()
            if text is not None:
                target.write_text(text, encoding="utf-8")

    @property
    def config_name(self) -> str:
        return self.config.name if self.config else ""

    def config_file(self, folder: Path) -> Path:
        assert self.config is not None
        return self.config.write(folder)

    def shell(
        self,
        *,
        rootdir: str,
        config_file: str,
        junit: str | None,
        extra: tuple[str, ...],
        sandboxed: bool,
        installed: tuple[str, ...] = (),
    ) -> str:
        if JUNIT in self.command:  # the command names where its report goes
            if junit is not None and not SAFE_PATH.fullmatch(junit):
                raise GateUnavailable(f"a JUnit report path with shell characters: {junit!r}")
            return " ".join([self.command.replace(JUNIT, junit or "/dev/null"),
                             *(shlex.quote(a) for a in extra)])  # fmt: skip
        report = (f"--junitxml={junit}",) if junit else ()
        if self.parsed is None or self.config is None:
            return " ".join([self.command, *(shlex.quote(a) for a in (*extra, *report))])
        return isolated(
            self.parsed,
            config_file=config_file,
            rootdir=rootdir,
            pythonpath=self.config.pythonpath,
            extra=(*extra, *report),
            sandboxed=sandboxed,
            installed=installed,
        )
