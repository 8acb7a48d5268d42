"""How a Python test suite is written, told from its files' shapes: pytest or unittest.

pytest runs `unittest.TestCase` classes too, so a suite is "unittest" only when no file
needs pytest. Files are parsed with `ast`, never imported or executed.

Trust: the texts come from the base commit (`karma.testcommand` reads them from git's
objects), yet are treated as hostile: a file that does not parse, or nests deeper than
the parser goes, says nothing; the caller bounds how many files and how large.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import PurePosixPath
from typing import Literal

Style = Literal["pytest", "unittest"]

MAX_TEST_FILES = 64
"""How many of the base's test files are looked at to tell a pytest suite from a unittest one."""
_NOT_TESTS = {"node_modules", "site-packages", "venv", "__pycache__"}


def is_test_file(path: str) -> bool:
    """Whether pytest or unittest would collect `path` by its name (`test*.py`,
    `*_test.py`) or it configures pytest (`conftest.py`); not inside hidden or
    installed-package folders."""
    parts = PurePosixPath(path).parts
    if not parts or any(p.startswith(".") or p in _NOT_TESTS for p in parts[:-1]):
        return False
    name = parts[-1]
    return name == "conftest.py" or (
        name.endswith(".py") and (name.startswith("test") or name.endswith("_test.py"))
    )


def _imports(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name.split(".")[0] for alias in node.names]
    if isinstance(node, ast.ImportFrom) and node.module and not node.level:
        return [node.module.split(".")[0]]
    return []


def _base_name(base: ast.expr) -> str:
    if isinstance(base, ast.Attribute):
        return base.attr
    return base.id if isinstance(base, ast.Name) else ""


def file_style(text: str) -> Style | None:
    """How one test file is written: "pytest" (it imports pytest, or has a module-level
    `def test*` or a `class Test*` of no base, which only pytest collects), "unittest"
    (`unittest.TestCase` classes and nothing only pytest runs), or None (neither, or not
    Python that parses)."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    unittest = False
    for node in ast.walk(tree):
        modules = _imports(node)
        if "pytest" in modules or "_pytest" in modules:
            return "pytest"
        unittest = unittest or "unittest" in modules
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith(
            "test"
        ):
            return "pytest"
        if isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            bases = [_base_name(b) for b in node.bases]
            if not bases or bases == ["object"]:
                return "pytest"
            unittest = unittest or any(b.endswith("TestCase") for b in bases)
    return "unittest" if unittest else None


def suite_style(files: Iterable[tuple[str, str]]) -> tuple[Style, str] | None:
    """How the suite is written, and the file that shows it: "pytest" as soon as one
    file needs pytest, "unittest" when the files with a style are all unittest."""
    seen: str | None = None
    for path, text in files:
        style = "pytest" if PurePosixPath(path).name == "conftest.py" else file_style(text)
        if style == "pytest":
            return "pytest", path
        if style == "unittest" and seen is None:
            seen = path
    return ("unittest", seen) if seen is not None else None
