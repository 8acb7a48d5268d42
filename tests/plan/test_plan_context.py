"""The planner's repository context: .gitignore respected, symbols, stack, token bound."""

from __future__ import annotations

import subprocess
from pathlib import Path

from karma.context import gather_context, list_files, render_tree


def write(repo: Path, name: str, text: str = "") -> None:
    path = repo / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_gitignored_files_are_left_out_and_untracked_ones_kept(git_repo: Path) -> None:
    write(git_repo, ".gitignore", "build/\n*.log\n")
    write(git_repo, "build/out.py", "x = 1\n")
    write(git_repo, "debug.log")
    write(git_repo, "app/new.py", "def fresh():\n    pass\n")  # untracked, not ignored
    files = list_files(git_repo)
    assert files == [".gitignore", "README.md", "app/new.py"]


def test_a_folder_that_is_not_a_repository_is_walked(tmp_path: Path) -> None:
    write(tmp_path, "a.py")
    write(tmp_path, ".venv/lib/x.py")
    write(tmp_path, "node_modules/y.js")
    assert list_files(tmp_path) == ["a.py"]


def test_context_has_tree_symbols_stack_and_test_command(git_repo: Path) -> None:
    write(git_repo, "pyproject.toml", "[project]\nname = 'shop'\n")
    write(
        git_repo,
        "shop/models.py",
        "class Cart:\n    def add(self): ...\n    def _hidden(self): ...\n",
    )
    write(git_repo, "shop/api.py", "from shop.models import Cart\n\nasync def checkout(): ...\n")
    write(git_repo, "shop/broken.py", "def (:\n")
    write(git_repo, "tests/test_api.py", "from shop import api\n\ndef test_it(): ...\n")
    context = gather_context(git_repo)
    assert context.stack == "python"
    assert context.test_command is not None and "pytest" in context.test_command
    text = context.render()
    assert "shop/\n  api.py\n  broken.py\n  models.py" in text
    assert "shop/models.py: class Cart(add)" in text
    assert "shop/api.py: def checkout" in text
    # The most imported module comes first; tests after sources.
    lines = context.symbols.splitlines()
    assert lines[0].startswith("shop/models.py") or lines[0].startswith("shop/api.py")
    assert lines[-1].startswith("tests/test_api.py")
    assert not context.summarised


def test_no_stack_is_said_plainly(git_repo: Path) -> None:
    context = gather_context(git_repo)
    assert context.stack is None
    assert "Stack: unknown" in context.render()


def test_a_large_repository_is_summarised_within_budget(git_repo: Path) -> None:
    for package in range(30):
        for module in range(40):
            write(git_repo, f"pkg{package}/sub/mod{module}.py", f"def f{module}():\n    pass\n")
    subprocess.run(["git", "add", "-A"], cwd=git_repo, check=True)
    context = gather_context(git_repo, max_tokens=2000)
    assert context.summarised
    assert context.tokens <= 2100  # the budget, give or take the four header lines
    assert len(context.files) == 1201
    # Collapsed directories keep their counts rather than vanishing.
    assert "(40 files: 40 .py)" in context.tree
    assert "more source files omitted)" in context.symbols


def test_render_tree_collapses_deepest_levels_first() -> None:
    files = [f"a/b/c/f{i}.py" for i in range(50)] + ["top.md"]
    text, cut = render_tree(files, max_chars=60)
    assert cut
    assert text == "a/\n  b/\n    c/ (50 files: 50 .py)\ntop.md"
