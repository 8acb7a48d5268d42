"""The test command a tox env or a nox session defines, read without running either.

`tox.ini` / `tox.toml` / `pyproject.toml [tool.tox]` are parsed (configparser, tomllib):
the default env's `commands`, `{posargs}` and the few substitutions that have one
meaning resolved, anything else left alone. `noxfile.py` is parsed with `ast`, never
imported: only a `session.run` of string literals (and `*session.posargs`) is used.
Each command is rewritten to run with the image's Python (`runner_argv`).

Trust: `read` gives files of the base commit (`karma.testcommand`), the trusted side,
still parsed as if hostile (nothing in them runs on the host).
"""

from __future__ import annotations

import ast
import configparser
import re
import shlex
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


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


Read = Callable[[str], "str | None"]
"""The text of a file of the base commit by its root-relative path, or None."""
Found = tuple[list[str], str, str]
"""A test command's argv, the file (and table) it came from, and why it was chosen."""

RUNNERS = ("pytest", "py.test")
_POSARGS = re.compile(r"\{posargs(?::([^{}]*))?\}")
_KNOWN = {"{toxinidir}": ".", "{tox_root}": ".", "{envpython}": "python",
          "{env_python}": "python", "{envbindir}/": "", "{env_bin_dir}/": ""}  # fmt: skip


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


def toml_table(text: str | None) -> dict[str, Any]:
    """`text` as a TOML table; empty when there is none or it is not TOML."""
    if text is None:
        return {}
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return {}


def from_tox(read: Read) -> Found | None:
    """The first test-runner line of the default tox env's `commands`."""
    pyproject = toml_table(read("pyproject.toml")).get("tool", {})
    candidates: list[tuple[str, list[str] | None]] = [
        ("tox.ini [testenv] commands", _ini_commands(read("tox.ini") or "")),
        ("tox.toml env_run_base.commands", _toml_commands(toml_table(read("tox.toml")) or None)),
        ("pyproject.toml [tool.tox] commands", _toml_commands(pyproject.get("tox"))),
    ]
    for source, lines in candidates:
        for line in lines or ():
            argv = _tox_line(line)
            if argv is not None:
                return argv, source, "the default tox env's first command that runs a test runner"
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


def from_nox(read: Read) -> Found | None:
    """The first test-runner `session.run` of the nox session named `tests`."""
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
                return argv, "noxfile.py session tests", why
    return None
