"""The test command a Python project defines for itself, read from its base commit.

(`for_stack` picks by the stack's `test_config`: this module for Python, a Node
project's `package.json` test script by `karma.nodecommand`, or the recipe's command.)

Looked for in this order, the first that names a test runner wins, and the choice says
where it came from and why (`TestCommand.source`, `.reason`; `karma doctor` and
`karma plan` show it):

1. `tox.ini` (or `tox.toml`, `pyproject.toml [tool.tox]`): the `commands` of the default
   env (`[testenv]`, `env_run_base`); the first line that runs pytest or unittest
   (`karma.testenvs`), without the pytest-cov and xdist options (`plugin_free`).
2. `noxfile.py`: a session named `tests`, its first `session.run(...)` of a test runner.
   The file is parsed with `ast`, never imported or executed; a call with anything but
   string literals (and `*session.posargs`) is not used.
3. pytest configuration (`pytest.ini`, `[tool.pytest.ini_options]`, `setup.cfg
   [tool:pytest]`, `tox.ini [pytest]`, ...) or pytest (or a `pytest-*` plugin) among the
   test dependencies: the stack's pytest command.
4. The tests themselves (their files parsed with `ast`, never imported): any written for
   pytest (a `conftest.py`, `import pytest`, a module-level `def test_*`, a plain
   `class Test*`) keeps pytest, which also runs `unittest.TestCase` classes; only a suite
   of `unittest.TestCase` classes alone gets `python -m unittest discover` (from `tests/`
   or `test/` when there is one). No test files at all: the stack's pytest command.

Trust: every input is a file of the base commit (`from_git`, `from_commit`: git's
objects), the trusted side; the model-edited tree is never read. A `tox.ini` or
`noxfile.py` that a change adds or edits is not read. Files larger than `MAX_BYTES` are
not read, and at most `MAX_TEST_FILES` test files are looked at. The command then runs
where the stack's command runs (the sandbox; the host only for `karma gate` on a human's
change), never `tox` or `nox` themselves (they build environments from the network).
"""

from __future__ import annotations

import configparser
import re
import shlex
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from karma.hostgit import HostGit
from karma.recipes import Stack
from karma.testenvs import Read, from_nox, from_tox, toml_table
from karma.testenvs import TestCommand as TestCommand  # where it always was imported from
from karma.teststyle import MAX_TEST_FILES, is_test_file, suite_style

MAX_BYTES = 256 * 1024
"""A base file larger than this is not read (a configuration or a test file is smaller)."""
PYTEST_CONFIGS = ("pytest.toml", ".pytest.toml", "pytest.ini", ".pytest.ini")
_PLUGIN_OPTIONS = {
    # pytest-cov: `--cov` takes an optional source, the others a value or none.
    "--cov": "optional", "--cov-report": "value", "--cov-config": "value",
    "--cov-fail-under": "value", "--cov-context": "value", "--cov-append": "flag",
    "--cov-branch": "flag", "--no-cov": "flag", "--no-cov-on-fail": "flag",
    # pytest-xdist
    "-n": "value", "--numprocesses": "value", "--dist": "value", "--maxprocesses": "value",
}  # fmt: skip
# pytest itself or one of its plugins (`pytest-cov`), not `pytest.ini` or `mypytest`.
_PYTEST_DEP = re.compile(r"(?i)(?<![\w.-])pytest(?![\w.])")


def plugin_free(argv: list[str]) -> tuple[list[str], list[str]]:
    """A pytest `argv` without the options of plugins that tox or nox install for
    themselves (`--cov*`, xdist's `-n`), which the image may not hold: they change how
    the suite is measured or spread, not what passes. The argv, and what was left out."""
    if argv[1:3] != ["-m", "pytest"]:
        return argv, []
    kept, dropped = argv[:3], []
    rest = iter(argv[3:])
    for arg in rest:
        name, attached = arg.split("=", 1)[0], "=" in arg
        if name in _PLUGIN_OPTIONS:
            kind = _PLUGIN_OPTIONS[name]
        elif re.fullmatch(r"-n\w+", arg):  # `-nauto`, `-n4`
            kind, attached = "value", True
        else:
            kept.append(arg)
            continue
        dropped.append(arg)
        following = None if attached or kind == "flag" else next(rest, None)
        if following is None:
            continue
        if kind == "value" or not following.startswith("-"):  # argparse's nargs="?"
            dropped.append(following)
        else:
            kept.append(following)
    return kept, dropped


def _command(argv: list[str], source: str, why: str) -> TestCommand:
    argv, dropped = plugin_free(argv)
    if dropped:
        why += f" ({shlex.join(dropped)} left out: plugin options the image may not hold)"
    return TestCommand(shlex.join(argv), source, why)


def pytest_config(read: Read) -> str | None:
    """Which base file configures pytest, as pytest would find it; None when none does."""
    for name in PYTEST_CONFIGS:
        if read(name) is not None:
            return name
    tool = toml_table(read("pyproject.toml")).get("tool", {})
    if isinstance(tool, dict) and isinstance(tool.get("pytest"), dict):
        return "pyproject.toml [tool.pytest]"
    for name, section in (("tox.ini", "pytest"), ("setup.cfg", "tool:pytest")):
        parser = configparser.ConfigParser(interpolation=None, strict=False)
        try:
            parser.read_string(read(name) or "")
        except configparser.Error:
            continue
        if parser.has_section(section):
            return f"{name} [{section}]"
    return None


def _pytest_dependency(read: Read, names: Collection[str]) -> str | None:
    project = toml_table(read("pyproject.toml"))
    tables = {
        "pyproject.toml [project.optional-dependencies]": project.get("project", {}).get(
            "optional-dependencies"
        ),
        "pyproject.toml [dependency-groups]": project.get("dependency-groups"),
        "pyproject.toml [tool.poetry] groups": project.get("tool", {}).get("poetry"),
    }
    for source, table in tables.items():
        if table and _PYTEST_DEP.search(repr(table)):
            return source
    files = sorted(n for n in names if re.fullmatch(r"(test-)?requirements.*\.txt|setup\.cfg", n))
    for name in files:
        if _PYTEST_DEP.search(read(name) or ""):
            return name
    return None


def _discover(read: Read, names: Collection[str]) -> str:
    for folder in ("tests", "test"):
        if folder in names:
            # `-t .` imports `tests.test_x` from the root, which needs `tests/__init__.py`;
            # without it, the folder is the top level (unittest refuses `-t .` then).
            top = " -t ." if read(f"{folder}/__init__.py") is not None else ""
            return f"python -m unittest discover -s {folder}{top}"
    return "python -m unittest discover"


def choose(
    read: Read,
    names: Collection[str],
    default: str,
    tests: Iterable[tuple[str, str]] = (),
) -> TestCommand:
    """The project's test command (module docstring), `default` being the stack's pytest
    one. `tests` yields the base's test files (path, text); it is read only when the
    project's configuration does not decide."""
    found = from_tox(read) or from_nox(read)
    if found is not None:
        return _command(*found)
    if config := pytest_config(read):
        return TestCommand(default, config, "pytest is configured there")
    if dependency := _pytest_dependency(read, names):
        return TestCommand(default, dependency, "pytest is a test dependency")
    style = suite_style(tests)
    if style is None:
        return TestCommand(default, "the stack's default",
                           "no test configuration, and no test files written for pytest "
                           "or unittest")  # fmt: skip
    kind, path = style
    if kind == "pytest":
        return TestCommand(default, path, "the tests are written for pytest")
    return TestCommand(
        _discover(read, names),
        "unittest discovery",
        f"the tests are unittest.TestCase classes ({path}), with no pytest configuration, "
        "no pytest dependency and no tox/nox test command",
    )


@dataclass(frozen=True)
class _Tree:
    """The regular files of one commit, by path, read from git's objects on demand."""

    git: HostGit
    blobs: dict[str, str]
    """path -> blob sha"""
    read_before: dict[str, str | None] = field(default_factory=dict)

    @classmethod
    def of(cls, git: HostGit, commit: str) -> _Tree:
        listing = git.raw("ls-tree", "-r", "-z", "--full-tree", commit)
        blobs: dict[str, str] = {}
        for record in filter(None, listing.split(b"\0")):
            meta, _, raw = record.partition(b"\t")
            mode, kind, sha = meta.decode().split()
            if kind == "blob" and mode in ("100644", "100755"):
                blobs[raw.decode("utf-8", "surrogateescape")] = sha
        return cls(git, blobs)

    def under(self, folder: str) -> _Tree:
        """The files of `folder` ("." the whole tree), by path relative to it."""
        if folder in ("", "."):
            return self
        prefix = folder.rstrip("/") + "/"
        inner = {p[len(prefix) :]: s for p, s in self.blobs.items() if p.startswith(prefix)}
        return _Tree(self.git, inner)

    def root_names(self) -> list[str]:
        return list(dict.fromkeys(path.split("/", 1)[0] for path in self.blobs))

    def texts(self, paths: list[str]) -> Iterator[tuple[str, str]]:
        """(path, text) of each of `paths` no larger than `MAX_BYTES`, in order."""
        shas = [self.blobs[p] for p in paths]
        if not shas:
            return
        sizes = self.git.raw("cat-file", "--batch-check", input="".join(f"{s}\n" for s in shas)
                             .encode()).decode().splitlines()  # fmt: skip
        small = [(p, s) for p, s, line in zip(paths, shas, sizes, strict=True)
                 if int(line.split()[2]) <= MAX_BYTES]  # fmt: skip
        bodies = self.git.iter_blobs([s for _, s in small])
        for (path, _), body in zip(small, bodies, strict=True):
            yield path, body.decode("utf-8", errors="replace")

    def read(self, rel: str) -> str | None:
        if rel not in self.read_before:  # pyproject.toml is asked for several times
            texts = self.texts([rel]) if rel in self.blobs else iter(())
            self.read_before[rel] = next((text for _, text in texts), None)
        return self.read_before[rel]

    def tests(self) -> Iterator[tuple[str, str]]:
        """The test files nearest the root first (conftest.py before its folder's tests)."""
        found = [p for p in self.blobs if is_test_file(p)]
        found.sort(key=lambda p: (p.count("/"), not p.endswith("conftest.py"), p))
        yield from self.texts(found[:MAX_TEST_FILES])


def from_git(git: HostGit, commit: str, default: str, *, folder: str = ".") -> TestCommand:
    """`choose` on the files of `commit` (git objects: the trusted side), those of its
    `folder` when a stack is placed in one (karma/layout.py)."""
    tree = _Tree.of(git, commit).under(folder)
    return choose(tree.read, tree.root_names(), default, tree.tests())


def base_reader(git: HostGit, commit: str, *, folder: str = ".") -> Read:
    """Read one file of `commit` (git objects, regular files, at most `MAX_BYTES`), by
    its path relative to `folder`."""
    return _Tree.of(git, commit).under(folder).read


def from_commit(repo: Path, commit: str, default: str, *, folder: str = ".") -> TestCommand:
    """`from_git` on the repository `repo`."""
    from karma.hostgit import discover

    return from_git(HostGit(discover(repo)[0]), commit, default, folder=folder)


def for_tasks(repo: Path, commit: str, stack: Stack, *, folder: str = ".") -> Stack:
    """`stack` as a build's tasks run it in `folder`: the suite as `commit` defines it,
    and without the checks the project's own test script at `commit` already does
    (`Check.covered_by`: a `tsc && node --test` script compiles, so no `tsc --noEmit`
    before it). Read from git's objects, like everything here; a change that drops `tsc`
    from its script still meets the tests gate, which runs the base's script."""
    from karma.hostgit import discover
    from karma.nodecommand import test_script

    tree = _Tree.of(HostGit(discover(repo)[0]), commit).under(folder)  # listed once
    checks = stack.checks
    if stack.test_config == "package.json" and any(check.covered_by for check in checks):
        script = test_script(tree.read) or ""
        checks = tuple(c for c in checks if not (c.covered_by and re.search(c.covered_by, script)))
    command = choose(tree.read, tree.root_names(), stack.test_command, tree.tests()).command
    return stack.model_copy(update={"test_command": command, "checks": checks})


def for_repo(repo: Path) -> TestCommand | None:
    """The test command of `repo`'s HEAD commit (what `karma doctor` and `karma plan`
    show); None outside a repository of a known stack or before its first commit."""
    from karma.errors import KarmaError
    from karma.home import _git, base_root_names
    from karma.recipes import detect_stack

    try:
        head = _git(repo, "rev-parse", "--verify", "-q", "HEAD^{commit}").decode().strip()
        stack = detect_stack(repo, names=base_root_names(repo, head)) if head else None
        if not stack:
            return None
        from karma.hostgit import discover

        return for_stack(HostGit(discover(repo)[0]), head, stack)
    except KarmaError:
        return None


def for_stack(git: HostGit, commit: str, stack: Stack, *, folder: str = ".") -> TestCommand:
    """The test command of `commit` for `stack`, as its `test_config` says where to look:
    Python's configuration (`from_git`), the `package.json` test script
    (`karma.nodecommand`), or the recipe's own command."""
    from karma.nodecommand import node_command

    if stack.test_config == "package.json":
        return node_command(base_reader(git, commit, folder=folder), stack)
    if stack.test_config == "none":
        command = stack.junit_command or stack.test_command
        return TestCommand(command, f"the {stack.name} stack", "its recipe's command")
    return from_git(git, commit, stack.test_command, folder=folder)
