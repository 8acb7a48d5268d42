"""Which tests a change touches: its changed test files, and the tests that import a changed
module, directly or through other modules (a per-task check on a long suite runs these
rather than the whole suite).

Imports are read with `ast` (absolute and relative, `from pkg import mod` as `pkg.mod`),
never by importing anything. A change to a `conftest.py` or to a file that configures
pytest or the package (`pyproject.toml`, `setup.cfg`, `pytest.ini`, `tox.ini`,
`setup.py`) can reach any test: the answer is then "the whole suite" (None).

Trust: the files are the task's worktree, written by the model (untrusted). The
selection only narrows the per-task check that runs in the sandbox; the tests gate still
runs the base's whole suite on the result, so a change that hides a test from this
selection hides it from nothing that decides.
"""

from __future__ import annotations

import ast
from collections.abc import Collection, Mapping
from pathlib import PurePosixPath

from karma.teststyle import is_test_file

WHOLE_SUITE = frozenset(
    {"conftest.py", "pyproject.toml", "setup.cfg", "setup.py", "pytest.ini", "tox.ini"}
)
"""A changed file of one of these names can change any test's outcome."""
SOURCE_ROOTS = ("src", "lib")
"""Folders that hold the packages rather than being one (`src/calc/ops.py` is `calc.ops`)."""


def module_name(path: str) -> str:
    """The dotted module a `.py` path is imported as (`src/calc/__init__.py`: `calc`)."""
    parts = list(PurePosixPath(path).with_suffix("").parts)
    if len(parts) > 1 and parts[0] in SOURCE_ROOTS:
        parts = parts[1:]
    if parts and parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imported(text: str, path: str) -> set[str]:
    """The modules `text` (the file at `path`) imports, absolute; `from a import b`
    counts as both `a` and `a.b` (b may be a module). Empty when it does not parse."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return set()
    own = module_name(path)
    package = own if path.endswith("__init__.py") else own.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".") if package else []
                base = parts[: len(parts) - (node.level - 1)] if node.level > 1 else parts
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            if module:
                names.add(module)
            names.update(f"{module}.{a.name}".lstrip(".") for a in node.names if a.name != "*")
    return names


def _reaches(names: set[str], dirty: set[str]) -> bool:
    """Whether importing one of `names` runs a module in `dirty` (`calc.ops.sub` runs
    `calc.ops`; its parent `calc` runs it only if `calc` imports it, found as such)."""
    for name in names:
        parts = name.split(".")
        if any(".".join(parts[:end]) in dirty for end in range(1, len(parts) + 1)):
            return True
    return False


def affected_tests(changed: Collection[str], files: Mapping[str, str]) -> tuple[str, ...] | None:
    """The test files among `files` (path -> text, the tree after the change) that the
    change to `changed` can affect, in path order; None when it can affect any test."""
    if any(PurePosixPath(p).name in WHOLE_SUITE for p in changed):
        return None
    python = {p: t for p, t in files.items() if p.endswith(".py")}
    imports = {p: imported(t, p) for p, t in python.items()}
    dirty = {module_name(p) for p in changed if p.endswith(".py")}
    reached = {p for p in changed if p in python}
    grew = True
    while grew:  # until no file newly imports a module the change reached
        grew = False
        for path, names in imports.items():
            if path not in reached and _reaches(names, dirty):
                reached.add(path)
                dirty.add(module_name(path))
                grew = True
    tests = (p for p in reached if is_test_file(p) and not p.endswith("conftest.py"))
    return tuple(sorted(tests))
