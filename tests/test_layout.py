"""Where a repository's stacks are (`karma.layout`): read from the base commit's git
objects, each stack in its folder, and fixed for the build whatever a change adds."""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

import pytest

from karma.config import KarmaConfig
from karma.context import gather_context
from karma.executor.unit import run_checks
from karma.gates.interface import GateContext
from karma.gates.suite import load_suite, per_stack
from karma.hostgit import HostGit, discover
from karma.layout import ROOT, StackLayout, base_layout, detect_layout
from karma.sandbox.images import read_inputs
from karma.sandbox.interface import ExecResult, ImageBuildError
from karma.testing.repos import git, init_repo

PACKAGE = '{"name": "web", "private": true, "scripts": {"test": "node --test test/"}}\n'


def _write(root: Path, files: dict[str, str]) -> None:
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)


def _repo(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "repo"
    root.mkdir(parents=True)
    _write(root, files)
    return init_repo(root / ".." / "repo-git", source=root)


def _layout(repo: Path, commit: str = "HEAD") -> StackLayout:
    return base_layout(HostGit(discover(repo)[0]), git(repo, "rev-parse", commit))


def _placed(layout: StackLayout) -> list[tuple[str, str]]:
    return [(p.label, p.stack.name) for p in layout.placed]


def test_a_single_stack_repository_has_one_entry(tmp_path: Path) -> None:
    """A sub-folder of the root's own stack is part of the root's project."""
    repo = _repo(tmp_path, {"pyproject.toml": "[project]\nname='a'\n",
                            "docs/requirements.txt": "sphinx\n", "a/__init__.py": ""})  # fmt: skip
    layout = _layout(repo)
    assert _placed(layout) == [(".", "python")] and not layout.mixed


def test_the_stacks_of_sub_folders_are_placed_one_or_two_folders_down(tmp_path: Path) -> None:
    repo = _repo(tmp_path, {
        "pyproject.toml": "[project]\nname='a'\n",
        "web/package.json": PACKAGE,
        "web/sub/go.mod": "module sub\n",  # inside a placed folder: web's
        "services/greet/go.mod": "module greet\n",
        "node_modules/left-pad/package.json": "{}",  # generated or vendored: never a stack
        "vendor/x/go.mod": "module x\n",
        ".hidden/package.json": "{}",
        "a/b/c/package.json": "{}",  # three folders down: not looked at
    })  # fmt: skip
    layout = _layout(repo)
    assert _placed(layout) == [(".", "python"), ("services/greet", "go"), ("web", "node")]
    assert layout.describe() == "python (the root), go (in services/greet/), node (in web/)"


def test_a_monorepo_without_a_root_stack(tmp_path: Path) -> None:
    repo = _repo(tmp_path, {"README.md": "x", "api/pyproject.toml": "[project]\nname='a'\n",
                            "web/package.json": PACKAGE})  # fmt: skip
    assert _placed(_layout(repo)) == [("api", "python"), ("web", "node")]
    assert detect_layout(["README.md"]).placed == ()


def test_a_symlinked_marker_or_folder_places_no_stack(tmp_path: Path) -> None:
    """The listing is git's regular files: a link is never a marker, and git never
    descends into a linked folder."""
    repo = _repo(tmp_path, {"pyproject.toml": "", "real/package.json": PACKAGE})
    os.symlink("../real/package.json", repo / "linked-marker")
    (repo / "ui").mkdir()
    os.symlink("../real/package.json", repo / "ui" / "package.json")
    os.symlink("real", repo / "linked-folder")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "links")
    assert _placed(_layout(repo)) == [(".", "python"), ("real", "node")]


def test_a_task_runs_on_the_stack_most_of_its_files_belong_to() -> None:
    layout = detect_layout(["pyproject.toml", "web/package.json", "web/admin/package.json"])
    assert _placed(layout) == [(".", "python"), ("web", "node")]
    assert layout.for_paths(["web/src/a.ts", "web/test/a.test.ts", "api.py"]).label == "web"
    assert layout.for_paths(["web/a.ts", "api.py"]).label == "."  # a tie: the earlier
    assert layout.for_paths([]).label == "."
    assert layout.owner("web") is not None and layout.owner("web").label == "."  # type: ignore[union-attr]
    assert layout.primary.inner("web/x.ts") == "web/x.ts"
    assert layout.placed[1].inner("web/src/x.ts") == "src/x.ts"
    assert layout.placed[1].inner("webby/x.ts") is None
    assert layout.placed[1].outer("test/a.test.js") == "web/test/a.test.js"
    assert layout.primary.outer("tests/test_a.py::test_b") == "tests/test_a.py::test_b"


def test_the_layout_is_the_base_commits_whatever_the_change_adds(tmp_path: Path) -> None:
    """A model that adds a package.json or a go.mod moves no task, image or gate: the
    layout is read from the base commit once, and the gates expand from it alone."""
    repo = _repo(tmp_path, {"pyproject.toml": "", "web/package.json": PACKAGE})
    base = git(repo, "rev-parse", "HEAD")
    _write(repo, {"tools/package.json": PACKAGE, "svc/go.mod": "module svc\n",
                  "web/pyproject.toml": ""})  # fmt: skip
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "the change plants stacks")
    layout = _layout(repo, base)
    assert _placed(layout) == [(".", "python"), ("web", "node")]
    assert _placed(_layout(repo)) != _placed(layout)  # what the head alone would place
    config = KarmaConfig()
    suite = load_suite(config.gates.suite, overrides=config.gates.overrides)
    ctx = GateContext(repo=repo, base=base, config=config, layout=layout,
                      stack=layout.primary.stack)  # fmt: skip
    expanded, contexts = per_stack(suite, ctx)
    names = [g.name for g in expanded.gates if g.name.startswith("tests")]
    assert names == ["tests", "tests:web"]
    assert contexts["tests:web"].folder == "web" and contexts["tests"].folder == "."
    assert contexts["tests:web"].owns("web/src/a.js") and not contexts["tests"].owns("web/a.js")
    assert contexts["tests"].owns("tools/package.json")  # the root's, as the base places it
    single, none = per_stack(suite, GateContext(repo=repo, base=base, config=config))
    assert single == suite and none == {}


def test_an_image_reads_the_dependency_files_of_its_folder_through_no_symlink(
    tmp_path: Path,
) -> None:
    repo = _repo(tmp_path, {"pyproject.toml": "", "web/package.json": PACKAGE,
                            "outside/package.json": '{"name": "secret"}'})  # fmt: skip
    inputs = read_inputs("node", repo, folder=PurePosixPath("web"))
    assert dict(inputs.deps) == {"package.json": PACKAGE.encode()}
    assert inputs.installer == "npm"
    os.symlink("outside", repo / "ui")  # the checkout's folder is a link out
    with pytest.raises(ImageBuildError, match="not a plain directory"):
        read_inputs("node", repo, folder=PurePosixPath("ui"))
    with pytest.raises(ImageBuildError, match="not inside the repository"):
        read_inputs("node", repo, folder=PurePosixPath("../repo/web"))


class _Recording:
    """A sandbox that runs nothing and says every command passed, recording where."""

    id = image = "recording"

    def __init__(self) -> None:
        self.calls: list[tuple[str, str | None]] = []

    def exec(self, command: str, *, timeout_s: float, workdir: str | None = None) -> ExecResult:
        self.calls.append((command, workdir))
        return ExecResult(command, 0, "", 0.0)


def test_the_checks_run_in_the_stacks_folder_over_its_own_files(tmp_path: Path) -> None:
    repo = _repo(tmp_path, {"pyproject.toml": "", "web/package.json": PACKAGE,
                            "web/src/a.py": "", "b.py": ""})  # fmt: skip
    layout = detect_layout(["pyproject.toml", "web/package.json"])
    python, web = layout.placed
    box = _Recording()
    run_checks(python.stack, repo, box, ["b.py", "web/src/a.py"], 10, workdir="/workspace")  # type: ignore[arg-type]
    assert box.calls[0] == (
        "python -m py_compile b.py web/src/a.py",
        "/workspace",
    )
    box.calls.clear()
    run_checks(web.stack, repo, box, ["b.py", "web/src/a.py"], 10, folder=web.folder,
               workdir="/workspace")  # type: ignore[arg-type]  # fmt: skip
    assert [where for _, where in box.calls] == ["/workspace/web"]  # no source: the tests
    assert box.calls[0][0] == "npm test --silent"
    assert run_checks(python.stack, repo, box, [], 10, folder=ROOT) != []  # type: ignore[arg-type]


def test_the_planner_sees_each_stack_with_its_folder(tmp_path: Path) -> None:
    repo = _repo(tmp_path, {"pyproject.toml": "", "web/package.json": PACKAGE})
    text = gather_context(repo).render()
    assert "Stack: python\nStacks: python (the root), node (in web/)." in text
    single = _repo(tmp_path / "one", {"pyproject.toml": ""})
    assert "Stacks:" not in gather_context(single).render()


def test_a_stack_folder_the_model_made_a_link_is_not_read_through_on_the_host(
    tmp_path: Path,
) -> None:
    """Test selection walks the folder on the host: through a link it would read any
    folder of this machine, so a linked folder gets the whole suite, selected by no read."""
    layout = detect_layout(["README.md", "api/pyproject.toml"])
    (api,) = layout.placed
    files = {"calc.py": "X = 1\n", "tests/test_calc.py": "import calc\n\ndef test_x():\n    pass\n"}
    worktree = tmp_path / "worktree"
    _write(worktree / "api", files)
    box = _Recording()
    run_checks(api.stack, worktree, box, ["api/calc.py"], 10, select=True, folder=api.folder,
               workdir="/workspace")  # type: ignore[arg-type]  # fmt: skip
    assert box.calls[-1] == ("python -m pytest -q -p no:cacheprovider tests/test_calc.py",
                             "/workspace/api")  # fmt: skip
    outside = tmp_path / "outside"
    _write(outside, files)
    linked = tmp_path / "linked"
    linked.mkdir()
    os.symlink(outside, linked / "api")
    box.calls.clear()
    run_checks(api.stack, linked, box, ["api/calc.py"], 10, select=True, folder=api.folder,
               workdir="/workspace")  # type: ignore[arg-type]  # fmt: skip
    assert box.calls[-1] == (api.stack.test_command, "/workspace/api")
