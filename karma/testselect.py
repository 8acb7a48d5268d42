"""Which tests a change touches: its changed test files, and the tests that import a changed
module, directly or through other modules (a per-task check on a long suite runs these
rather than the whole suite).

Imports are read with `ast` (absolute and relative, `from pkg import mod` as `pkg.mod`),
never by importing anything. A change to a `conftest.py` or to a file that configures
pytest or the package (`pyproject.toml`, `setup.cfg`, `pytest.ini`, `tox.ini`,
`setup.py`) can reach any test: the answer is then "the whole suite" (None).

Trust: the files are the task's worktree, written by the model (untrusted), read by
`in_tree` as the host-side gates read a tree (`karma.gates.files`: no symlink followed,
regular files only, bounded in size and number). The selection only narrows the
per-task check that runs in the sandbox; the tests gate still runs the base's whole
suite on the result, so a change that hides a test from this selection hides it from
nothing that decides.
"""

from __future__ import annotations

import ast
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path, PurePosixPath

from karma.gates.files import read_text_beneath
from karma.teststyle import is_test_file

WHOLE_SUITE = frozenset(
    {"conftest.py", "pyproject.toml", "setup.cfg", "setup.py", "pytest.ini", "tox.ini"}
)
"""A changed file of one of these names can change any test's outcome."""
MAX_FILES = 20_000
"""A tree with more Python files than this is not read: the whole suite runs."""
MAX_BYTES = 512 * 1024
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


def affected_tests(changed: Collection[str], files: Mapping[str, str]) -> tuple[str, ...] | None:
    """The test files among `files` (path -> text, the tree after the change) that the
    change to `changed` can affect, in path order; None when it can affect any test."""
    if any(PurePosixPath(p).name in WHOLE_SUITE for p in changed):
        return None
    importers: dict[str, list[str]] = {}  # module -> the files whose imports run it
    for path, text in files.items():
        if not path.endswith(".py"):
            continue
        for name in imported(text, path):
            parts = name.split(".")  # `import calc.ops.sub` runs calc and calc.ops too
            for end in range(1, len(parts) + 1):
                importers.setdefault(".".join(parts[:end]), []).append(path)
    reached = {p for p in changed if p in files and p.endswith(".py")}
    queue = [module_name(p) for p in changed if p.endswith(".py")]
    while queue:
        for path in importers.get(queue.pop(), ()):
            if path not in reached:
                reached.add(path)
                queue.append(module_name(path))
    tests = (p for p in reached if is_test_file(p) and not p.endswith("conftest.py"))
    return tuple(sorted(tests))


def in_tree(root: Path, changed: Collection[str], paths: Iterable[str]) -> tuple[str, ...] | None:
    """`affected_tests` on the worktree `root`: its Python files among `paths` (the
    tracked and staged files), each read beneath `root` without following a symlink; a
    file that cannot be read so is left out. None (the whole suite) past `MAX_FILES`."""
    python = [p for p in paths if p.endswith(".py")]
    if len(python) > MAX_FILES:
        return None
    files = {}
    for path in python:
        text = read_text_beneath(root, path, MAX_BYTES)
        if text is not None:
            files[path] = text
    return affected_tests(changed, files)
