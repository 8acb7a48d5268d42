"""Gate trees are exports without `.git`: code under test that writes one (a pointer to
its own git dir with hostile config) changes nothing the host's git does afterwards."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from karma.config import KarmaConfig
from karma.gates import gate_tree
from karma.gates.change import base_worktree, changed_paths, diff_text
from karma.gates.interface import GateContext
from karma.home import DataRoots
from karma.recipes import detect_stack
from karma.workspace import Workspace
from tests.gates.conftest import git, make_repo, write

pytestmark = pytest.mark.docker

# Run by the tests gate inside the sandbox: turn /workspace/.git into a pointer to a git
# dir of its own whose config would run a command on whoever uses it.
CONFTEST = """
import pathlib

root = pathlib.Path(__file__).parent
evil = root / ".evil"
for sub in ("objects/info", "refs/heads", "info", "hooks"):
    (evil / sub).mkdir(parents=True, exist_ok=True)
(evil / "HEAD").write_text("ref: refs/heads/main\\n")
(evil / "config").write_text(
    "[core]\\n\\tfsmonitor = touch {marker}; false\\n"
    "[diff \\"evil\\"]\\n\\ttextconv = touch {marker}; cat\\n"
    "[filter \\"x\\"]\\n\\tclean = touch {marker}; cat\\n"
)
(evil / "info" / "attributes").write_text("* diff=evil filter=x\\n")
(root / ".git").write_text("gitdir: .evil\\n")
"""


def test_a_gate_sandbox_rewriting_git_cannot_reach_the_host(tmp_path: Path) -> None:
    from karma.sandbox import get_sandbox
    from karma.sandbox.images import ensure_image

    marker = tmp_path / "MARKER"
    repo = make_repo(tmp_path / "r", {"requirements.txt": "", "test_x.py": "def test_a():\n"
                                      "    assert 1\n"})  # fmt: skip
    base = git(repo, "rev-parse", "HEAD")
    write(repo, {"conftest.py": CONFTEST.format(marker=marker), "app.py": "A = 1\n"})
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "change")
    head = git(repo, "rev-parse", "HEAD")
    ws = Workspace(repo)
    tree = tmp_path / "gates-1"
    tree.mkdir()
    ws.export(head, tree)
    assert not (tree / ".git").exists()
    config = KarmaConfig.model_validate({"sandbox": {"base_image": "karma/base:bookworm"}})
    backend = get_sandbox(config)
    result = gate_tree(
        tree,
        base,
        config,
        data=DataRoots.trusted(),
        stack=detect_stack(repo),
        head=head,
        only=("tests",),
        start_sandbox=backend.start,
        sandbox_image=ensure_image("python", repo, config),
        run_id="gates-gitfile",
        git_dir=ws.git_dir,
    )
    assert result.result("tests") is not None
    ctx = GateContext(repo=tree, base=base, config=config, head=head, git_dir=ws.git_dir)
    assert changed_paths(ctx) == ["app.py", "conftest.py"]
    assert "+A = 1" in diff_text(ctx)
    with base_worktree(ctx) as base_tree:
        assert (base_tree / "test_x.py").is_file()
    worktree = ws.add_worktree("r/a-1", "karma-work/r/a-1", head)
    (worktree.path / "b.py").write_text("B = 1\n")
    assert ws.changed_files(worktree) == ["b.py"]
    assert not marker.exists()
    if (tree / ".git").is_file():  # the sandbox wrote into the tree itself: show it bites
        subprocess.run(["git", "add", "-A"], cwd=tree, capture_output=True, check=False)
        assert marker.exists()
