"""The agent's tools: every path the model names stays inside the worktree."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from karma.sandbox.interface import ExecResult
from karma.tools import TOOLS, Toolbox


class CannedRunner:
    """A command runner with a canned result (the real one is a Docker sandbox)."""

    def __init__(self, result: ExecResult) -> None:
        self.result = result
        self.commands: list[str] = []

    def __call__(self, command: str) -> ExecResult:
        self.commands.append(command)
        return self.result


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "wt"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "a.py").write_text("x = 1\ny = 1\n")
    (root / ".git").write_text("gitdir: /somewhere\n")
    (tmp_path / "outside.txt").write_text("secret\n")
    return root


def box(root: Path, output: str = "ok", exit_code: int = 0) -> Toolbox:
    return Toolbox(root, CannedRunner(ExecResult("c", exit_code, output, 0.1)), output_chars=1000)


def test_tool_names_are_the_contract() -> None:
    assert [t.name for t in TOOLS] == [
        "read_file",
        "list_files",
        "search_code",
        "write_file",
        "edit_file",
        "run",
        "finish",
    ]
    search = next(t for t in TOOLS if t.name == "search_code")
    assert search.input_schema["required"] == ["pattern"]


@pytest.mark.parametrize(
    "path",
    [
        "/etc/passwd",
        "../outside.txt",
        "pkg/../../outside.txt",
        ".git/config",
        ".git",
        "pkg/.git/x",
        "~/x",
        "",
    ],
)
def test_paths_outside_are_refused_and_nothing_is_written(root: Path, path: str) -> None:
    tools = box(root)
    result = tools.call("write_file", {"path": path, "content": "pwned"})
    assert result.is_error
    assert (root.parent / "outside.txt").read_text() == "secret\n"
    assert (root / ".git").read_text() == "gitdir: /somewhere\n"
    assert tools.call("read_file", {"path": path}).is_error


def test_symlink_leading_out_is_refused(root: Path) -> None:
    os.symlink(root.parent, root / "escape")
    os.symlink(root.parent / "outside.txt", root / "link.txt")
    tools = box(root)
    assert tools.call("write_file", {"path": "escape/outside.txt", "content": "x"}).is_error
    assert tools.call("write_file", {"path": "link.txt", "content": "x"}).is_error
    assert tools.call("read_file", {"path": "link.txt"}).is_error
    assert (root.parent / "outside.txt").read_text() == "secret\n"


def test_write_read_list_search(root: Path) -> None:
    tools = box(root)
    assert not tools.call(
        "write_file", {"path": "new/b.py", "content": "def f():\n    pass\n"}
    ).is_error
    assert tools.call("read_file", {"path": "new/b.py"}).content.startswith("def f")
    listing = tools.call("list_files", {"path": "."}).content.splitlines()
    assert "new/b.py" in listing and "pkg/a.py" in listing and ".git" not in listing
    hits = tools.call("search_code", {"pattern": r"def \w+"}).content
    assert hits == "new/b.py:1: def f():"
    assert tools.written == {"new/b.py"}


def test_edit_must_match_exactly_once(root: Path) -> None:
    tools = box(root)
    several = tools.call("edit_file", {"path": "pkg/a.py", "old": "= 1", "new": "= 2"})
    assert several.is_error and "2 times" in several.content
    missing = tools.call("edit_file", {"path": "pkg/a.py", "old": "zzz", "new": "q"})
    assert missing.is_error and "does not occur" in missing.content
    assert (root / "pkg" / "a.py").read_text() == "x = 1\ny = 1\n"
    ok = tools.call("edit_file", {"path": "pkg/a.py", "old": "x = 1", "new": "x = 3"})
    assert not ok.is_error
    assert (root / "pkg" / "a.py").read_text() == "x = 3\ny = 1\n"


def test_run_output_is_tail_truncated_with_a_note(root: Path) -> None:
    tools = box(root, output="A" * 5000 + "THE END", exit_code=1)
    result = tools.call("run", {"command": "make"})
    assert result.is_error
    assert result.content.startswith("exit code 1")
    assert "truncated" in result.content and result.content.endswith("THE END")
    assert len(result.content) < 1200


def test_huge_write_is_refused(root: Path) -> None:
    result = box(root).call("write_file", {"path": "big.txt", "content": "x" * 2_000_000})
    assert result.is_error and not (root / "big.txt").exists()


def test_unknown_tool_and_bad_arguments(root: Path) -> None:
    tools = box(root)
    assert tools.call("rm_rf", {}).is_error
    assert tools.call("read_file", {"file": "x"}).is_error
    assert tools.call("finish", {"summary": "done"}).finished == "done"
