"""The test command a Python project defines for itself, read from its base commit.

Looked for in this order, the first that names a test runner wins, and the choice says
where it came from and why (`TestCommand.source`, `.reason`; `karma doctor` and
`karma plan` show it):

1. `tox.ini` (or `tox.toml`, `pyproject.toml [tool.tox]`): the `commands` of the default
   env (`[testenv]`, `env_run_base`); the first line that runs pytest or unittest.
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

import ast
import configparser
import re
import shlex
import tomllib
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from karma.hostgit import HostGit
from karma.teststyle import MAX_TEST_FILES, is_test_file, suite_style

Read = Callable[[str], "str | None"]
"""The text of a file of the base commit by its root-relative path, or None."""

MAX_BYTES = 256 * 1024
"""A base file larger than this is not read (a configuration or a test file is smaller)."""
PYTEST_CONFIGS = ("pytest.toml", ".pytest.toml", "pytest.ini", ".pytest.ini")
RUNNERS = ("pytest", "py.test")
_POSARGS = re.compile(r"\{posargs(?::([^{}]*))?\}")
_KNOWN = {"{toxinidir}": ".", "{tox_root}": ".", "{envpython}": "python",
          "{env_python}": "python", "{envbindir}/": "", "{env_bin_dir}/": ""}  # fmt: skip
# pytest itself or one of its plugins (`pytest-cov`), not `pytest.ini` or `mypytest`.
_PLUGIN_OPTIONS = {
    # pytest-cov: `--cov` takes an optional source, the others a value or none.
    "--cov": "optional", "--cov-report": "value", "--cov-config": "value",
    "--cov-fail-under": "value", "--cov-context": "value", "--cov-append": "flag",
    "--cov-branch": "flag", "--no-cov": "flag", "--no-cov-on-fail": "flag",
    # pytest-xdist
    "-n": "value", "--numprocesses": "value", "--dist": "value", "--maxprocesses": "value",
}  # fmt: skip
_PYTEST_DEP = re.compile(r"(?i)(?<![\w.-])pytest(?![\w.])")


@dataclass(frozen=True)
class TestCommand:
    """The command the suite runs with, and which of the project's files chose it."""

    __test__ = False  # not a pytest class, whatever its name

    command: str
    source: str
    """Where it came from: `tox.ini [testenv] commands`, `noxfile.py session tests`, ..."""
    reason: str

    def line(self) -> str:
        return f"`{self.command}` from {self.source}: {self.reason}"


def runner_argv(argv: list[str]) -> list[str] | None:
    """`argv` as a command of the image's Python when it runs pytest or unittest."""
    if not argv:
        return None
    head, rest = Path(argv[0]).name, argv[1:]
    if head in RUNNERS:
        return ["python", "-m", "pytest", *rest]
    if head == "coverage" and rest[:1] == ["run"]:
        # `coverage run [opts] -m pytest ...`: the runner without the coverage wrapper.
        if "-m" in rest:
            return runner_argv(["python", *rest[rest.index("-m") :]])
        return None
    if re.fullmatch(r"python(\d+(\.\d+)*)?", head) and rest[:1] == ["-m"] and len(rest) > 1:
        module = rest[1]
        if module in RUNNERS or module == "unittest":
            return ["python", "-m", "pytest" if module in RUNNERS else module, *rest[2:]]
    return None


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


def _tox_line(line: str) -> list[str] | None:
    line = line.strip().lstrip("-!").strip()
    if re.match(r"^[\w.{},!-]+:\s", line):  # a factor-conditional line: `py39: pytest`
        line = line.split(":", 1)[1].strip()
    line = _POSARGS.sub(lambda m: m.group(1) or "", line)
    for key, value in _KNOWN.items():
        line = line.replace(key, value)
    if "{" in line or "}" in line:
        return None  # a substitution we do not know how to resolve
    try:
        return runner_argv(shlex.split(line))
    except ValueError:
        return None


def _ini_commands(text: str) -> list[str] | None:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(text)
    except configparser.Error:
        return None
    if not parser.has_option("testenv", "commands"):
        return None
    joined = parser.get("testenv", "commands").replace("\\\n", " ")
    return [line for line in joined.splitlines() if line.strip()]


def _toml_commands(table: Any) -> list[str] | None:
    if not isinstance(table, dict):
        return None
    if isinstance(table.get("legacy_tox_ini"), str):
        return _ini_commands(table["legacy_tox_ini"])
    base = table.get("env_run_base")
    commands = base.get("commands") if isinstance(base, dict) else None
    if not isinstance(commands, list):
        return None
    lines = []
    for argv in commands:
        if isinstance(argv, list) and all(isinstance(a, str) for a in argv):
            lines.append(" ".join(a if a.startswith("{") else shlex.quote(a) for a in argv))
    return lines


def _toml(text: str | None) -> dict[str, Any]:
    if text is None:
        return {}
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return {}


def from_tox(read: Read) -> TestCommand | None:
    pyproject = _toml(read("pyproject.toml")).get("tool", {})
    candidates: list[tuple[str, list[str] | None]] = [
        ("tox.ini [testenv] commands", _ini_commands(read("tox.ini") or "")),
        ("tox.toml env_run_base.commands", _toml_commands(_toml(read("tox.toml")) or None)),
        ("pyproject.toml [tool.tox] commands", _toml_commands(pyproject.get("tox"))),
    ]
    for source, lines in candidates:
        for line in lines or ():
            argv = _tox_line(line)
            if argv is not None:
                why = "the default tox env's first command that runs a test runner"
                return _command(argv, source, why)
    return None


def _session_name(func: ast.FunctionDef) -> str | None:
    """The nox session name of `func`, or None when it is not a session."""
    for deco in func.decorator_list:
        target = deco.func if isinstance(deco, ast.Call) else deco
        name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
        if name != "session":
            continue
        if isinstance(deco, ast.Call):
            for kw in deco.keywords:
                if kw.arg == "name" and isinstance(kw.value, ast.Constant):
                    return str(kw.value.value)
        return func.name
    return None


def _literal_argv(call: ast.Call, session: str) -> list[str] | None:
    argv: list[str] = []
    for arg in call.args:
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            argv.append(arg.value)
        elif (
            isinstance(arg, ast.Starred)
            and isinstance(arg.value, ast.Attribute)
            and arg.value.attr == "posargs"
        ):
            continue
        else:
            return None
    return argv


def from_nox(read: Read) -> TestCommand | None:
    text = read("noxfile.py")
    if text is None:
        return None
    try:
        tree = ast.parse(text, "noxfile.py")
    except (SyntaxError, ValueError):
        return None
    for func in ast.walk(tree):
        if not isinstance(func, ast.FunctionDef) or _session_name(func) != "tests":
            continue
        session = func.args.args[0].arg if func.args.args else "session"
        for node in ast.walk(func):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "run"
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == session
            ):
                continue
            literal = _literal_argv(node, session)
            argv = runner_argv(literal) if literal is not None else None
            if argv is not None:
                why = "the `tests` session's first session.run of a test runner (read, not run)"
                return _command(argv, "noxfile.py session tests", why)
    return None


def pytest_config(read: Read) -> str | None:
    """Which base file configures pytest, as pytest would find it; None when none does."""
    for name in PYTEST_CONFIGS:
        if read(name) is not None:
            return name
    tool = _toml(read("pyproject.toml")).get("tool", {})
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
    project = _toml(read("pyproject.toml"))
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
        return found
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


def from_git(git: HostGit, commit: str, default: str) -> TestCommand:
    """`choose` on the files of `commit` (git objects: the trusted side)."""
    tree = _Tree.of(git, commit)
    return choose(tree.read, tree.root_names(), default, tree.tests())


def from_commit(repo: Path, commit: str, default: str) -> TestCommand:
    """`from_git` on the repository `repo`."""
    from karma.hostgit import discover

    return from_git(HostGit(discover(repo)[0]), commit, default)


def for_repo(repo: Path) -> TestCommand | None:
    """The test command of `repo`'s HEAD commit (what `karma doctor` and `karma plan`
    show); None outside a repository of a known stack or before its first commit."""
    from karma.errors import KarmaError
    from karma.home import _git, base_root_names
    from karma.recipes import detect_stack

    try:
        head = _git(repo, "rev-parse", "--verify", "-q", "HEAD^{commit}").decode().strip()
        stack = detect_stack(repo, names=base_root_names(repo, head)) if head else None
        return from_commit(repo, head, stack.test_command) if stack else None
    except KarmaError:
        return None
