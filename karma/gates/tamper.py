"""What a change does to its own test run: new skips, and hooks that can rewrite outcomes.

Each added or modified Python file is parsed at base and at head (`ast`, never
imported). Names are resolved through the file's imports, so `@mark.skip` after `from
pytest import mark`, `@skip` after `from unittest import skip` or `pt.mark.xfail` after
`import pytest as pt` are the same marker as `@pytest.mark.skip`. A use counts as new
when its (enclosing function or class, resolved name) occurs more often at head than at
base, so moving a file's code around does not flag what the base already had.

- Skips: the pytest and unittest skip/xfail names (`SKIP_NAMES`), `self.skipTest(...)`,
  `add_marker("skip")`; a file that does not parse falls back to a regex on its added lines.
- Hooks: a function with an outcome-changing hook's name (the suite's `outcome_hooks`,
  data in `quality_gates/default.toml`), anywhere in the file (a class registered as a
  plugin counts), a hook imported or assigned under its name, a star import or dynamic
  code (`exec`, `globals()`, `setattr`, ...) in a conftest.py, an assignment to a
  report's `outcome`/`longrepr`/`wasxfail`, to `exitstatus` or to `config.option.*`, a
  runtime `pluginmanager.register(...)`, and a new or changed `pytest_plugins`. A
  conftest.py with fixtures only is ordinary work.
"""

from __future__ import annotations

import ast
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from karma.gates.change import changed_paths, diff_text, git
from karma.gates.files import read_text_beneath
from karma.gates.interface import Finding, GateContext, GateSettings
from karma.gates.jsskips import is_test_script
from karma.gates.jsskips import new_skips as script_skips
from karma.gates.secrets import added_lines
from karma.gates.testreport import new_skips as marker_skips

SKIP_NAMES = (
    "pytest.mark.skip",
    "pytest.mark.skipif",
    "pytest.mark.xfail",
    "pytest.skip",
    "pytest.xfail",
    "pytest.importorskip",
    "pytest.exit",
    "_pytest.outcomes",
    "_pytest.skipping",
    "_pytest.mark.structures.MARK_GEN.skip",
    "unittest.skip",
    "unittest.skipIf",
    "unittest.skipUnless",
    "unittest.expectedFailure",
    "unittest.SkipTest",
    "unittest.case.skip",
    "unittest.case.skipIf",
    "unittest.case.skipUnless",
    "unittest.case.expectedFailure",
    "unittest.case.SkipTest",
)
SKIP_METHODS = frozenset({"skipTest"})
MARKER_METHODS = frozenset({"add_marker", "applymarker"})
MARKER_STRINGS = frozenset({"skip", "skipif", "xfail"})
OUTCOME_ATTRIBUTES = frozenset({"outcome", "longrepr", "wasxfail", "exitstatus"})
FALLBACK = re.compile(
    r"(\bmark\.(skip|skipif|xfail)\b|\bpytest\.(skip|xfail|importorskip|exit)\b|"
    r"\bunittest\.(skip|skipIf|skipUnless|expectedFailure|SkipTest)\b|\bskipTest\(|"
    r"\bSkipTest\b|\bpytestmark\b|add_marker\(|applymarker\(|\bpytest_\w+)"
)


@dataclass(frozen=True)
class Use:
    scope: str
    """The enclosing function/class qualname ("" at module level)."""
    what: str
    line: int


DYNAMIC = frozenset({"exec", "eval", "compile", "globals", "vars", "setattr", "__import__"})
"""Calls through which a conftest.py could define a hook under a name the scan cannot see."""


class _Scanner(ast.NodeVisitor):
    def __init__(self, hooks: frozenset[str], conftest: bool) -> None:
        self.hooks = hooks
        self.conftest = conftest
        self.aliases: dict[str, str] = {}
        self.scope: list[str] = []
        self.skips: list[Use] = []
        self.tampers: list[Use] = []

    # -- names --------------------------------------------------------------------------

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.asname:
                self.aliases[alias.asname] = alias.name
            else:
                root = alias.name.split(".")[0]
                self.aliases[root] = root

    def alias(self, node: ast.ImportFrom) -> None:
        if node.module and not node.level:
            for alias in node.names:
                self.aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        self.alias(node)
        for alias in node.names:
            if (alias.asname or alias.name) in self.hooks:
                self._tamper(f"imports the hook {alias.asname or alias.name}", node, ast.dump(node))
            elif alias.name == "*" and self.conftest:
                self._tamper("star-imports into a conftest.py", node, ast.dump(node))

    def dotted(self, node: ast.expr) -> str | None:
        parts: list[str] = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if not isinstance(node, ast.Name):
            return None
        root = self.aliases.get(node.id, node.id)
        return ".".join([root, *reversed(parts)])

    # -- scopes -------------------------------------------------------------------------

    def _scoped(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> None:
        # A decorator belongs to what it decorates: moving a skip to another test is new.
        self.scope.append(node.name)
        for decorator in node.decorator_list:
            self.visit(decorator)
        for child in node.body:
            self.visit(child)
        self.scope.pop()

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._function(node)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self._function(node)

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        if node.name in self.hooks:
            self._tamper(f"defines the hook {node.name}", node, ast.dump(node))
        self._scoped(node)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self._scoped(node)

    # -- uses ---------------------------------------------------------------------------

    def _skip(self, what: str, node: ast.AST) -> None:
        self.skips.append(Use(".".join(self.scope), what, getattr(node, "lineno", 0)))

    def _tamper(self, what: str, node: ast.AST, key: str = "") -> None:
        line = getattr(node, "lineno", 0)
        self.tampers.append(Use(".".join(self.scope), what + ("\0" + key if key else ""), line))

    def visit_Attribute(self, node: ast.Attribute) -> None:
        self._name(node)
        if not isinstance(node.value, (ast.Name, ast.Attribute)) or self.dotted(node) is None:
            self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> None:
        self._name(node)

    def _name(self, node: ast.Attribute | ast.Name) -> None:
        name = self.dotted(node)
        if name is None:
            return
        for skip in SKIP_NAMES:
            if name == skip or name.startswith(skip + "."):
                self._skip(skip, node)
                return

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Attribute):
            if func.attr in SKIP_METHODS:
                self._skip(func.attr, node)
            if func.attr in MARKER_METHODS and any(
                isinstance(a, ast.Constant) and a.value in MARKER_STRINGS for a in node.args
            ):
                self._skip(f"{func.attr}(str)", node)
            if func.attr == "register" and "pluginmanager" in (self.dotted(func.value) or ""):
                self._tamper("registers a pytest plugin at run time", node, ast.dump(node))
        # Builtins by bare name only: `monkeypatch.setattr(...)` in a fixture is ordinary.
        called = func.id if isinstance(func, ast.Name) else (self.dotted(func) or "")
        if self.conftest and (called in DYNAMIC or called == "importlib.import_module"):
            self._tamper(f"calls {called}() in a conftest.py", node, ast.dump(node))
        if isinstance(func, ast.Name) and func.id == "getattr" and node.args:
            target = self.dotted(node.args[0]) or ""
            if target.endswith(("pytest.mark", "pytest", "unittest")):
                self._skip(f"getattr({target})", node)
        self.generic_visit(node)

    def visit_Assign(self, node: ast.Assign) -> None:
        self._assigned(node.targets, node)
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self._assigned([node.target], node)
        self.generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self._assigned([node.target], node)
        self.generic_visit(node)

    def _assigned(self, targets: Sequence[ast.expr], node: ast.stmt) -> None:
        for target in targets:
            for leaf in ast.walk(target):
                if isinstance(leaf, ast.Name) and leaf.id in self.hooks:
                    self._tamper(f"assigns the hook {leaf.id}", node, ast.dump(node))
                if isinstance(leaf, ast.Name) and leaf.id == "pytest_plugins":
                    self._tamper("sets pytest_plugins", node, ast.dump(node))
                if isinstance(leaf, ast.Attribute) and leaf.attr in OUTCOME_ATTRIBUTES:
                    self._tamper(f"assigns .{leaf.attr}", node, ast.dump(node))
                if isinstance(leaf, ast.Attribute) and (self.dotted(leaf.value) or "").endswith(
                    "config.option"
                ):
                    self._tamper(f"assigns config.option.{leaf.attr}", node, ast.dump(node))


def _scan(source: str, hooks: frozenset[str], conftest: bool) -> _Scanner | None:
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return None
    scanner = _Scanner(hooks, conftest)
    # Imports first, wherever they are, so a name used above its import resolves.
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            scanner.visit_Import(node)
        elif isinstance(node, ast.ImportFrom):
            scanner.alias(node)
    scanner.visit(tree)
    return scanner


def _new(head: Iterable[Use], base: Iterable[Use]) -> Iterator[Use]:
    """The head uses beyond the base's count of the same (scope, what)."""
    left = Counter((u.scope, u.what) for u in base)
    for use in head:
        key = (use.scope, use.what)
        if left[key] > 0:
            left[key] -= 1
        else:
            yield use


def findings(
    path: str,
    head: str,
    base: str | None,
    added: Sequence[tuple[int, str]],
    *,
    hooks: frozenset[str],
    check_skips: bool,
) -> list[Finding]:
    """The tamper and skip findings of one changed Python file."""
    conftest = path.rsplit("/", 1)[-1] == "conftest.py"
    now = _scan(head, hooks, conftest)
    if now is None:
        return [
            Finding(
                "tests.unparsable-change",
                "error",
                path,
                line,
                f"a test-run control in a file that does not parse: {text.strip()[:120]}",
            )
            for line, text in added
            if FALLBACK.search(text)
        ]
    before = _scan(base, hooks, conftest) if base is not None else None
    out: list[Finding] = []
    seen_lines: set[tuple[str, int]] = set()
    for use in _new(now.tampers, before.tampers if before else ()):
        what = use.what.partition("\0")[0]
        out.append(
            Finding(
                "tests.outcome-hook",
                "error",
                path,
                use.line,
                f"{path} {what}, which can change test outcomes (a conftest.py with "
                "fixtures only is fine)",
            )
        )
    if check_skips:
        for use in _new(now.skips, before.skips if before else ()):
            if ("skip", use.line) in seen_lines:
                continue
            seen_lines.add(("skip", use.line))
            out.append(
                Finding(
                    "tests.new-skip-marker",
                    "error",
                    path,
                    use.line,
                    f"new skip/xfail ({use.what}) in {use.scope or 'module scope'}",
                )
            )
    return out


def tampering(
    ctx: GateContext, settings: GateSettings
) -> tuple[list[Finding], dict[str, str | None]]:
    """New skips and outcome-changing hooks in the change's Python files (`tamper`), and
    the base text (None: new) of each file whose hooks are to be left out of the run."""
    hooks = frozenset(str(h) for h in settings.get("outcome_hooks", ()))
    check_skips = not settings.get("allow_new_skips", False)
    changed = [p for p in changed_paths(ctx) if ctx.owns(p)]  # each stack's run judges its own
    paths = [p for p in changed if p.endswith(".py")]
    scripts = [p for p in changed if check_skips and is_test_script(p)]
    markers = ctx.stack is not None and ctx.stack.test_report is not None
    if not paths and not scripts and not (check_skips and markers):
        return [], {}
    at_base = set(
        filter(None, git(ctx, "ls-tree", "-r", "--name-only", "-z", ctx.base).split("\0"))
    )
    added: dict[str, list[tuple[int, str]]] = {}
    for path, line, text in added_lines(diff_text(ctx, context_lines=0)):
        if not ctx.owns(path):
            continue
        added.setdefault(path, []).append((line, text))
    found: list[Finding] = []
    if check_skips and ctx.stack is not None:  # a stack's own markers (`t.Skip(`, `#[ignore]`)
        found += marker_skips(
            ctx.stack, ((p, n, t) for p, lines in added.items() for n, t in lines)
        )
    reverted: dict[str, str | None] = {}
    for path in paths:
        head = read_text_beneath(ctx.repo, path)
        if head is None:
            continue  # not a regular file (a symlink): the approval gate's business
        base = git(ctx, "show", f"{ctx.base}:{path}") if path in at_base else None
        these = findings(
            path, head, base, added.get(path, []), hooks=hooks, check_skips=check_skips
        )
        if any(f.rule == "tests.outcome-hook" for f in these):
            reverted[path] = base
        found += these
    for path in scripts:  # JavaScript/TypeScript tests: skips only (karma.gates.jsskips)
        head = read_text_beneath(ctx.repo, path)
        if head is not None:
            base = git(ctx, "show", f"{ctx.base}:{path}") if path in at_base else None
            found += script_skips(path, head, base, added.get(path, []))
    return found, reverted
