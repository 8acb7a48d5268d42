"""Which tests a change touches, from the imports of the tree after it (parsed, never run)."""

from __future__ import annotations

from pathlib import Path

from karma.testselect import affected_tests, imported, in_tree, module_name

TREE = {
    "src/calc/__init__.py": "from calc.ops import add\n",
    "src/calc/ops.py": "def add(a, b):\n    return a + b\n",
    "src/calc/fmt.py": "from . import ops\n\ndef show(x):\n    return str(ops.add(x, 0))\n",
    "src/calc/units/__init__.py": "",
    "src/calc/units/si.py": "from ..fmt import show\n",
    "src/calc/cli.py": "import argparse\n",
    "tests/conftest.py": "",
    "tests/test_ops.py": "from calc.ops import add\n\ndef test_add():\n    assert add(1, 2) == 3\n",
    "tests/test_si.py": "import calc.units.si\n",
    "tests/test_cli.py": "from calc import cli\n",
    "tests/test_pkg.py": "import calc\n",
    "tests/test_broken.py": "def test_(:\n",
}


def test_module_names_follow_src_layouts_and_packages() -> None:
    assert module_name("src/calc/__init__.py") == "calc"
    assert module_name("src/calc/ops.py") == "calc.ops"
    assert module_name("calc/ops.py") == "calc.ops"
    assert module_name("tests/test_ops.py") == "tests.test_ops"
    assert module_name("setup.py") == "setup"


def test_relative_and_from_imports_resolve_to_absolute_modules() -> None:
    assert imported("from ..fmt import show\n", "src/calc/units/si.py") == {
        "calc.fmt",
        "calc.fmt.show",
    }
    assert imported("from . import ops\n", "src/calc/__init__.py") == {"calc", "calc.ops"}
    assert imported("from calc import *\nimport a.b\n", "t.py") == {"calc", "a.b"}
    assert imported("x = (" * 100_000, "t.py") == set()


def test_a_changed_module_selects_the_tests_that_reach_it_through_any_import() -> None:
    """ops is imported by the package itself, by fmt (relatively) and, through fmt, by
    units.si: every test that imports any of them runs; test_cli imports `calc` (which
    imports ops) too. A changed test file always runs."""
    assert affected_tests(["src/calc/ops.py"], TREE) == (
        "tests/test_cli.py",
        "tests/test_ops.py",
        "tests/test_pkg.py",
        "tests/test_si.py",
    )
    assert affected_tests(["src/calc/units/si.py"], TREE) == ("tests/test_si.py",)
    assert affected_tests(["src/calc/cli.py", "tests/test_new.py"],
                          {**TREE, "tests/test_new.py": ""}) == (
        "tests/test_cli.py", "tests/test_new.py")  # fmt: skip
    assert affected_tests(["README.md"], TREE) == ()


def test_a_change_that_can_reach_any_test_selects_the_whole_suite() -> None:
    for path in ("tests/conftest.py", "pyproject.toml", "setup.cfg", "sub/pytest.ini"):
        assert affected_tests([path, "src/calc/cli.py"], TREE) is None, path


def test_a_tree_that_would_run_code_on_import_is_only_parsed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    tree = {**TREE, "src/calc/ops.py": f"open({str(marker)!r}, 'w')\nimport os\n"}
    assert "tests/test_ops.py" in (affected_tests(["src/calc/ops.py"], tree) or ())
    assert not marker.exists()


def test_in_tree_reads_the_worktree_without_following_a_symlink(tmp_path: Path) -> None:
    """A test file the model made a symlink to a host file is not read (so not chosen by
    what that file imports); the real files are."""
    outside = tmp_path / "host_secret.py"
    outside.write_text("import calc.ops\n")
    root = tmp_path / "tree"
    for rel, text in TREE.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    (root / "tests" / "test_leak.py").symlink_to(outside)
    paths = [*TREE, "tests/test_leak.py"]
    chosen = in_tree(root, ["src/calc/units/si.py"], paths)
    assert chosen == ("tests/test_si.py",)
    assert "tests/test_leak.py" not in (in_tree(root, ["src/calc/ops.py"], paths) or ())
