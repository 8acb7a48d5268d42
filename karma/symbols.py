"""What each source file of a repository defines, for the planner: the symbol map.

Python is parsed (`ast`: classes with their public methods, functions); TypeScript and
JavaScript, Go and Rust are read at file level by what they export (`export function`,
`export class`, `export { a, b }`; Go's capitalised top-level functions, methods and
types; Rust's `pub` items), enough for a planner to know where things live. Files go in
order of centrality: how many other files import them (Python modules, relative
JavaScript/TypeScript imports), sources before tests, shallow before deep; what does not
fit is counted, not cut.

The files are the target repository's: untrusted. Each is read as text only, bounded in
size; a symbolic link, or a path that leaves the repository, is never read; and a symbol
is an identifier by construction (the patterns match nothing else), so no sentence of a
file reaches the planner's prompt through this map.
"""

from __future__ import annotations

import ast
import posixpath
import re
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path, PurePosixPath

from karma.gates.files import read_beneath
from karma.testselect import imported, module_name

MAX_PARSED = 500
"""Source files read for symbols at most (the most central first)."""
MAX_FILE_BYTES = 256_000
MAX_PER_FILE = 24
"""Symbols listed per file at most (then a count)."""

JS_SUFFIXES = (".ts", ".tsx", ".mts", ".cts", ".js", ".jsx", ".mjs", ".cjs")
_JS_DECLARED = re.compile(
    r"(?<![\w$.])export\s+(?:default\s+)?(?:declare\s+)?(?:abstract\s+)?(?:async\s+)?"
    r"(function\*?|class|const|let|var|interface|type|enum)\s+([A-Za-z_$][\w$]{0,80})",
    re.MULTILINE,
)
_JS_LIST = re.compile(r"(?<![\w$.])export\s*(?:type\s*)?\{([^}]{0,2000})\}")
_JS_NAME = re.compile(r"^[A-Za-z_$][\w$]{0,80}$")
_JS_IMPORT = re.compile(
    r"""(?:\bfrom\s*|\bimport\s*\(?\s*|\brequire\s*\(\s*)["'](\.{1,2}/[^"'\n]{1,300})["']"""
)
_GO = re.compile(
    r"^(?:func\s+(?:\(\s*\w{0,40}\s*\*?\s*(\w{1,80})(?:\[[^\]\n]{0,80}\])?\s*\)\s*)?([A-Z]\w{0,80})"
    r"|type\s+([A-Z]\w{0,80})\s+(struct|interface|func|\w))",
    re.MULTILINE,
)
_RUST = re.compile(
    r"^\s*pub(?:\([\w:\s]{1,40}\))?\s+(?:const\s+|async\s+|unsafe\s+|extern\s+\"C\"\s+)*"
    r"(fn|struct|enum|trait|type|mod|const|static)\s+([A-Za-z_]\w{0,80})",
    re.MULTILINE,
)


def _python(text: str, name: str) -> tuple[list[str], set[str]]:
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return [], set()
    out = []
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            methods = [
                item.name
                for item in node.body
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)
                and not (item.name.startswith("_") and item.name != "__init__")
            ]
            out.append(
                f"class {node.name}({', '.join(methods)})" if methods else f"class {node.name}"
            )
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            out.append(f"def {node.name}")
    return out, imported(text, name)


def _javascript(text: str, _name: str) -> tuple[list[str], set[str]]:
    kinds = {"function*": "function", "let": "const", "var": "const"}
    out = [f"{kinds.get(kind, kind)} {name}" for kind, name in _JS_DECLARED.findall(text)]
    for names in _JS_LIST.findall(text):
        for item in names.split(","):
            name = item.split(" as ")[-1].strip()
            if _JS_NAME.match(name):
                out.append(name)
    return out, set(_JS_IMPORT.findall(text))


def _go(text: str, _name: str) -> tuple[list[str], set[str]]:
    out = []
    for receiver, func, type_name, shape in _GO.findall(text):
        if func:
            out.append(f"func {receiver}.{func}" if receiver else f"func {func}")
        elif type_name:
            out.append(f"{shape if shape in ('struct', 'interface') else 'type'} {type_name}")
    return out, set()


def _rust(text: str, _name: str) -> tuple[list[str], set[str]]:
    return [f"{kind} {name}" for kind, name in _RUST.findall(text)], set()


Reader = Callable[[str, str], tuple[list[str], set[str]]]
READERS: dict[str, Reader] = {
    ".py": _python,
    **dict.fromkeys(JS_SUFFIXES, _javascript),
    ".go": _go,
    ".rs": _rust,
}


def _is_test(name: str) -> bool:
    lowered = name.lower()
    return "test" in lowered or ".spec." in lowered


def _read(repo: Path, name: str) -> str | None:
    """The file's text, or None: a symlink on the way, not a regular file, too large,
    not UTF-8 (the host-side gates' reader, `karma.gates.files`)."""
    data = read_beneath(repo, name, MAX_FILE_BYTES)
    return None if data is None else data.decode("utf-8", errors="replace")


def python_module_names(path: str) -> list[str]:
    """Every dotted suffix a file can be imported by (`src/app/api.py` -> `api`, `app.api`...)."""
    parts = module_name(path).split(".")
    return [".".join(parts[i:]) for i in range(len(parts)) if parts[i:]]


def _targets(name: str, imports: set[str], by_module: dict[str, list[str]]) -> set[str]:
    """The files of the repository that `name`'s imports reach."""
    if name.endswith(".py"):
        return {t for module in imports for t in by_module.get(module, [])}
    found = set()
    folder = PurePosixPath(name).parent
    for spec in imports:  # relative JavaScript/TypeScript imports: "./x", "../lib/y.js"
        joined = PurePosixPath(posixpath.normpath(f"{folder}/{spec}"))
        stem = str(joined.with_suffix("")) if joined.suffix in JS_SUFFIXES else str(joined)
        found.update(by_module.get(stem, []))
        found.update(by_module.get(f"{stem}/index", []))
    return found


def _keys(name: str) -> Iterable[str]:
    if name.endswith(".py"):
        return python_module_names(name)
    return [str(PurePosixPath(name).with_suffix(""))]


def symbol_map(repo: Path, files: list[str], max_chars: int) -> tuple[str, bool]:
    """The symbol map of `files` in at most `max_chars`; whether anything was left out."""
    sources = [name for name in files if PurePosixPath(name).suffix in READERS]
    sources.sort(key=lambda n: (_is_test(n), n.count("/"), n))
    read: dict[str, tuple[list[str], set[str]]] = {}
    for name in sources[:MAX_PARSED]:
        text = _read(repo, name)
        if text is not None:
            read[name] = READERS[PurePosixPath(name).suffix](text, name)
    by_module: dict[str, list[str]] = {}
    for name in read:
        for key in _keys(name):
            by_module.setdefault(key, []).append(name)
    imported_by: Counter[str] = Counter()
    for name, (_, imports) in read.items():
        imported_by.update(_targets(name, imports, by_module) - {name})
    ranked = sorted(read, key=lambda n: (-imported_by[n], _is_test(n), n.count("/"), n))
    lines: list[str] = []
    used = left = 0
    for name in ranked:
        symbols = list(dict.fromkeys(read[name][0]))
        if not symbols:
            continue
        shown = symbols[:MAX_PER_FILE]
        more = f"; (+{len(symbols) - len(shown)} more)" if len(symbols) > len(shown) else ""
        line = f"{name}: {'; '.join(shown)}{more}"
        if used + len(line) + 1 > max_chars:
            left += 1
            continue
        lines.append(line)
        used += len(line) + 1
    left += max(0, len(sources) - MAX_PARSED)
    if left:
        lines.append(f"(symbols of {left} more source files omitted)")
    return "\n".join(lines), bool(left)
