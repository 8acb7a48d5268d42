"""The hardened host git, attacked through the real paths on real repositories.

Each attack plants a command that would touch a marker file on the host if any host git
ran it; where it helps to show the attack is real, plain git runs it first (the
control) and the hardened path then must not.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from karma.config import KarmaConfig
from karma.errors import WorkspaceError
from karma.gates.change import base_worktree, changed_paths, diff_text, export_base
from karma.gates.interface import GateContext
from karma.hostgit import HostGit, NestedRepository, new_gitlinks, refuse_nested_git
from karma.pipeline.start import _salvage
from karma.testing.repos import git
from karma.workspace import Workspace


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "MARKER"


def _evil(marker: Path) -> str:
    """A shell command that leaves the marker (and passes data through, like a filter)."""
    return f"touch {marker}; cat"


def _nested_config(folder: Path, marker: Path) -> None:
    """A repository's git dir whose config runs the marker four ways."""
    (folder / "info").mkdir(parents=True, exist_ok=True)
    (folder / "objects").mkdir(exist_ok=True)
    (folder / "refs").mkdir(exist_ok=True)
    (folder / "HEAD").write_text("ref: refs/heads/main\n")
    (folder / "config").write_text(
        "[core]\n"
        f"\tfsmonitor = {_evil(marker)}\n"
        f'[filter "x"]\n\tclean = {_evil(marker)}\n\tsmudge = {_evil(marker)}\n'
        f"\tprocess = {_evil(marker)}\n\trequired = true\n"
        f'[diff "evil"]\n\ttextconv = {_evil(marker)}\n\tcommand = {_evil(marker)}\n'
    )
    (folder / "info" / "attributes").write_text("* filter=x diff=evil\n")


# -- nested repositories in a worktree ---------------------------------------------------


@pytest.mark.parametrize("where", ["vendor/.git", "a/b/c/deep/.git", "vendor/.GIT", "src/pkg/.git"])
def test_a_nested_repository_directory_is_refused_before_git_runs(
    git_repo: Path, marker: Path, where: str
) -> None:
    ws = Workspace(git_repo)
    wt = ws.add_worktree("r1/a-1", "karma-work/r1/a-1", ws.head())
    nested = wt.path / where
    _nested_config(nested, marker)
    (nested.parent / "lib.py").write_text("X = 1\n")
    (wt.path / "ok.py").write_text("OK = 1\n")
    with pytest.raises(NestedRepository, match="nested git repository") as err:
        ws.changed_files(wt)
    assert err.value.tip and "nested .git" in err.value.tip
    assert not marker.exists()
    # nothing was staged, nothing lost: the files are all still there
    assert (wt.path / "ok.py").read_text() == "OK = 1\n"
    assert (nested / "config").is_file()
    ws.remove_worktree(wt.path)  # removing it later runs nothing either
    assert not wt.path.exists() and not marker.exists()


def test_control_plain_git_runs_the_nested_fsmonitor(git_repo: Path, marker: Path) -> None:
    """What the refusal prevents: git on a superproject with a nested repo runs its config."""
    ws = Workspace(git_repo)
    wt = ws.add_worktree("r1/a-1", "karma-work/r1/a-1", ws.head())
    sub = wt.path / "vendor"
    sub.mkdir()
    subprocess.run(["git", "init", "-q", str(sub)], check=True)
    (sub / "f.txt").write_text("x\n")
    subprocess.run(["git", "-C", str(sub), "add", "f.txt"], check=True)
    subprocess.run(["git", "-C", str(sub), "-c", "user.name=u", "-c", "user.email=u@u",
                    "commit", "-qm", "v"], check=True)  # fmt: skip
    subprocess.run(["git", "-C", str(sub), "config", "core.fsmonitor", _evil(marker)], check=True)
    subprocess.run(["git", "-C", str(wt.path), "add", "-A"], check=True, capture_output=True)
    (sub / "f.txt").write_text("y\n")
    subprocess.run(["git", "-C", str(wt.path), "status"], check=True, capture_output=True)
    assert marker.exists()


def test_a_nested_git_file_pointer_is_refused(git_repo: Path, tmp_path: Path, marker: Path) -> None:
    evil = tmp_path / "evil-gitdir"
    _nested_config(evil, marker)
    ws = Workspace(git_repo)
    wt = ws.add_worktree("r1/a-1", "karma-work/r1/a-1", ws.head())
    (wt.path / "vendor").mkdir()
    (wt.path / "vendor" / ".git").write_text(f"gitdir: {evil}\n")
    (wt.path / "vendor" / "x.py").write_text("X = 1\n")
    with pytest.raises(NestedRepository, match=r"vendor/\.git"):
        ws.changed_files(wt)
    # a symlink named .git is refused as well, and never followed
    (wt.path / "vendor" / ".git").unlink()
    (wt.path / "vendor" / ".git").symlink_to(evil)
    with pytest.raises(NestedRepository):
        ws.changed_files(wt)
    assert not marker.exists()


def test_the_scan_does_not_follow_symlinks(git_repo: Path, tmp_path: Path, marker: Path) -> None:
    outside = tmp_path / "outside"
    _nested_config(outside / ".git", marker)
    ws = Workspace(git_repo)
    wt = ws.add_worktree("r1/a-1", "karma-work/r1/a-1", ws.head())
    (wt.path / "link").symlink_to(outside, target_is_directory=True)
    refuse_nested_git(wt.path)  # the link is a link, not a folder to walk
    assert ws.changed_files(wt) == ["link"]
    assert not marker.exists()


def test_the_root_git_pointer_a_sandbox_rewrote_is_never_read(
    git_repo: Path, tmp_path: Path, marker: Path
) -> None:
    """The worktree's own `.git` turned into a directory with hostile config (textconv,
    fsmonitor, hooks, an external diff) plus a committed `.gitattributes` naming it."""
    ws = Workspace(git_repo)
    wt = ws.add_worktree("r1/a-1", "karma-work/r1/a-1", ws.head())
    (wt.path / ".git").unlink()
    _nested_config(wt.path / ".git", marker)
    (wt.path / ".git" / "hooks").mkdir()
    hook = wt.path / ".git" / "hooks" / "pre-commit"
    hook.write_text(f"#!/bin/sh\ntouch {marker}\n")
    hook.chmod(0o755)
    (wt.path / ".gitattributes").write_text("* diff=evil filter=x\n")
    (wt.path / "a.py").write_text("A = 1\n")
    assert ws.changed_files(wt) == [".gitattributes", "a.py"]
    commit = ws.commit(wt, "task", {"Karma-Task": "a"})
    assert commit is not None
    assert "+A = 1" in ws.diff(wt.base, commit)
    ws.remove_worktree(wt.path)
    ws.prune()
    assert not wt.path.exists()
    assert not marker.exists()


def test_textconv_and_external_diff_in_the_users_config_do_not_run_on_model_content(
    git_repo: Path, marker: Path
) -> None:
    git(git_repo, "config", "diff.evil.textconv", _evil(marker))
    git(git_repo, "config", "diff.external", _evil(marker))
    ws = Workspace(git_repo)
    wt = ws.add_worktree("r1/a-1", "karma-work/r1/a-1", ws.head())
    (wt.path / ".gitattributes").write_text("*.py diff=evil\n")
    (wt.path / "a.py").write_text("A = 1\n")
    ws.changed_files(wt)
    commit = ws.commit(wt, "task", {})
    assert commit
    base = wt.base
    # control: plain git runs the model-selected driver
    subprocess.run(["git", "-C", str(git_repo), "diff", base, commit], capture_output=True)
    assert marker.exists()
    marker.unlink()
    assert "+A = 1" in ws.diff(base, commit)
    ctx = GateContext(repo=git_repo, base=base, config=KarmaConfig(), head=commit,
                      git_dir=ws.git_dir)  # fmt: skip
    assert "+A = 1" in diff_text(ctx)
    assert not marker.exists()


# -- submodules and gitlinks ---------------------------------------------------------------


def _commit_gitlink(repo: Path, path: str) -> str:
    """A commit on top of HEAD with a gitlink at `path` (and its .gitmodules entry)."""
    sha = git(repo, "rev-parse", "HEAD")
    (repo / ".gitmodules").write_text(f'[submodule "{path}"]\n\tpath = {path}\n\turl = ./x\n')
    git(repo, "add", ".gitmodules")
    git(repo, "update-index", "--add", "--cacheinfo", f"160000,{sha},{path}")
    git(repo, "commit", "-qm", "add submodule")
    return git(repo, "rev-parse", "HEAD")


def test_a_pre_existing_submodule_does_not_make_add_run_nested_config(
    git_repo: Path, marker: Path
) -> None:
    _commit_gitlink(git_repo, "sub")
    # the user's initialised module, with config a first `add` would run
    _nested_config(git_repo / ".git" / "modules" / "sub", marker)
    ws = Workspace(git_repo)
    wt = ws.add_worktree("r1/a-1", "karma-work/r1/a-1", ws.head())
    (wt.path / "a.py").write_text("A = 1\n")
    assert ws.changed_files(wt) == ["a.py"]  # the existing gitlink is not "new"
    assert ws.commit(wt, "task", {})
    # the model points the empty submodule folder at the module's git dir
    wt2 = ws.add_worktree("r1/a-2", "karma-work/r1/a-2", ws.head())
    (wt2.path / "sub").mkdir(exist_ok=True)
    (wt2.path / "sub" / ".git").write_text(f"gitdir: {git_repo / '.git' / 'modules' / 'sub'}\n")
    (wt2.path / "sub" / "f.txt").write_text("changed\n")
    with pytest.raises(NestedRepository):
        ws.changed_files(wt2)
    assert not marker.exists()


def test_a_merged_gitlink_then_a_nested_repo_in_it_is_refused(git_repo: Path, marker: Path) -> None:
    ws = Workspace(git_repo)
    base = ws.head()
    ws.create_branch("karma/r1", base)
    git(git_repo, "switch", "-q", "-c", "other")
    linked = _commit_gitlink(git_repo, "sub")
    git(git_repo, "switch", "-q", "main")
    merged = ws.integrate("karma/r1", linked, "merge the gitlink")
    assert merged.commit
    wt = ws.add_worktree("r1/a-1", "karma-work/r1/a-1", merged.commit)
    _nested_config(wt.path / "sub" / ".git", marker)
    (wt.path / "sub" / "f.txt").write_text("x\n")
    with pytest.raises(NestedRepository):
        ws.changed_files(wt)
    assert not marker.exists()


def test_new_gitlinks_reads_raw_diffs() -> None:
    z = "\0"
    raw = (
        f":000000 160000 {'0' * 40} {'a' * 40} A{z}sub{z}"
        f":100644 100644 {'b' * 40} {'c' * 40} M{z}a.py{z}"
        f":160000 160000 {'d' * 40} {'e' * 40} M{z}old{z}"
    )
    assert new_gitlinks(raw) == ["sub"]


# -- filters, salvage, failures as errors ---------------------------------------------------


def test_a_filter_that_breaks_the_protocol_is_a_workspace_error(git_repo: Path) -> None:
    """A driver in the user's own config named by a model-written `.gitattributes`, that
    exits without speaking git's protocol: `git add` exits 128, a WorkspaceError."""
    git(git_repo, "config", "filter.lfsish.process", "true")
    git(git_repo, "config", "filter.lfsish.required", "true")
    ws = Workspace(git_repo)
    wt = ws.add_worktree("r1/a-1", "karma-work/r1/a-1", ws.head())
    (wt.path / ".gitattributes").write_text("*.bin filter=lfsish\n")
    (wt.path / "blob.bin").write_bytes(b"\0" * 10)
    with pytest.raises(WorkspaceError, match="git update-index failed"):
        ws.changed_files(wt)


def test_salvage_of_a_tree_with_a_nested_repo_keeps_it_untouched(
    git_repo: Path, marker: Path
) -> None:
    ws = Workspace(git_repo)
    wt = ws.add_worktree("r1/a-1", "karma-work/r1/a-1", ws.head())
    _nested_config(wt.path / "vendor" / ".git", marker)
    (wt.path / "vendor" / "f.txt").write_text("x\n")
    (wt.path / "work.py").write_text("W = 1\n")
    _salvage(ws, "r1")
    assert not marker.exists()
    assert (wt.path / "work.py").read_text() == "W = 1\n"  # nothing lost


def test_host_git_environment_variables_are_ignored(
    git_repo: Path, tmp_path: Path, marker: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "elsewhere"
    subprocess.run(["git", "init", "-q", str(elsewhere)], check=True)
    exec_path = tmp_path / "exec"
    exec_path.mkdir()
    for name in ("git-add", "git-diff", "git-commit"):
        (exec_path / name).write_text(f"#!/bin/sh\ntouch {marker}\n")
        (exec_path / name).chmod(0o755)
    monkeypatch.setenv("GIT_DIR", str(elsewhere / ".git"))
    monkeypatch.setenv("GIT_WORK_TREE", str(elsewhere))
    monkeypatch.setenv("GIT_INDEX_FILE", str(tmp_path / "index"))
    monkeypatch.setenv("GIT_EXEC_PATH", str(exec_path))
    monkeypatch.setenv("GIT_EXTERNAL_DIFF", _evil(marker))
    monkeypatch.setenv("GIT_CONFIG_PARAMETERS", f"'core.fsmonitor={_evil(marker)}'")
    monkeypatch.setenv("GIT_CONFIG_COUNT", "1")
    monkeypatch.setenv("GIT_CONFIG_KEY_0", "core.pager")
    monkeypatch.setenv("GIT_CONFIG_VALUE_0", _evil(marker))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "global"))
    (tmp_path / "global").write_text(f"[core]\n\tfsmonitor = {_evil(marker)}\n")
    ws = Workspace(git_repo)
    assert ws.git_dir == (git_repo / ".git").resolve()
    wt = ws.add_worktree("r1/a-1", "karma-work/r1/a-1", ws.head())
    (wt.path / "a.py").write_text("A = 1\n")
    assert ws.changed_files(wt) == ["a.py"]
    commit = ws.commit(wt, "task", {})
    assert commit and "+A = 1" in ws.diff(wt.base, commit)
    assert not marker.exists()
    assert os.environ["GIT_DIR"]  # the host's own environment is left as it was


# -- gate trees: exports without .git --------------------------------------------------------


def test_gate_trees_are_exports_without_git(git_repo: Path, marker: Path) -> None:
    (git_repo / "run.sh").write_text("#!/bin/sh\n")
    (git_repo / "run.sh").chmod(0o755)
    (git_repo / "link").symlink_to("run.sh")
    (git_repo / "hidden.py").write_text("SECRET = 1\n")
    (git_repo / ".gitattributes").write_text("hidden.py export-ignore\n* filter=x\n")
    git(git_repo, "config", "filter.x.smudge", _evil(marker))
    git(git_repo, "add", "-A")
    git(git_repo, "commit", "-qm", "files")
    head = git(git_repo, "rev-parse", "HEAD")
    ws = Workspace(git_repo)
    dest = git_repo.parent / "export"
    dest.mkdir()
    ws.export(head, dest)
    assert not (dest / ".git").exists()
    assert (dest / "hidden.py").read_text() == "SECRET = 1\n"  # export-ignore is not honoured
    assert os.access(dest / "run.sh", os.X_OK)
    assert (dest / "link").is_symlink() and os.readlink(dest / "link") == "run.sh"
    assert not marker.exists()  # no smudge filter ran


def test_gate_git_uses_the_main_git_dir_when_the_tree_git_was_rewritten(
    git_repo: Path, tmp_path: Path, marker: Path
) -> None:
    """A gate sandbox wrote `.git` (a pointer to its own dir with hostile config) into
    the exported tree: the host's later diffs, exports and base checkouts ignore it."""
    base = git(git_repo, "rev-parse", "HEAD")
    (git_repo / "a.py").write_text("A = 1\n")
    (git_repo / ".gitattributes").write_text("*.py diff=evil\n")
    git(git_repo, "add", "-A")
    git(git_repo, "commit", "-qm", "change")
    head = git(git_repo, "rev-parse", "HEAD")
    ws = Workspace(git_repo)
    tree = tmp_path / "gates-1"
    tree.mkdir()
    ws.export(head, tree)
    evil = tmp_path / "evil"
    _nested_config(evil, marker)
    (evil / "objects" / "info").mkdir(parents=True)
    (evil / "objects" / "info" / "alternates").write_text(f"{git_repo / '.git' / 'objects'}\n")
    (tree / ".git").write_text(f"gitdir: {evil}\n")
    ctx = GateContext(repo=tree, base=base, config=KarmaConfig(), head=head, git_dir=ws.git_dir)
    assert changed_paths(ctx) == [".gitattributes", "a.py"]
    assert "+A = 1" in diff_text(ctx)
    out = tmp_path / "base-files"
    assert export_base(ctx, ["README.md", "a.py"], out) == ["README.md"]
    with base_worktree(ctx) as base_tree:
        assert not (base_tree / ".git").exists()
        assert not (base_tree / "a.py").exists()
    assert not marker.exists()


# -- every configuration key that runs a program --------------------------------------------

# Each is set in the user's repository config (the one config file git still reads) to
# the marker; the host's whole round (worktree, stage, commit, merge, diff, log, blame,
# export, gate reads) must run none of them.
PROGRAM_KEYS = [
    ("core.fsmonitor", "{evil}"),
    ("core.pager", "{evil}"),
    ("pager.diff", "{evil}"),
    ("core.editor", "{evil}"),
    ("sequence.editor", "{evil}"),
    ("core.askPass", "{evil}"),
    ("credential.helper", "!{evil}"),
    ("core.sshCommand", "{evil}"),
    ("diff.external", "{evil}"),
    ("diff.evil.textconv", "{evil}"),
    ("diff.evil.command", "{evil}"),
    ("merge.evil.driver", "{evil}"),
    ("gpg.program", "{evil}"),
    ("log.showSignature", "true"),
    ("uploadpack.packObjectsHook", "{evil}"),
    ("alias.diff", "!{evil}"),
    ("core.hooksPath", "{hooks}"),
]


@pytest.mark.parametrize(("key", "value"), PROGRAM_KEYS, ids=[k for k, _ in PROGRAM_KEYS])
def test_no_program_key_runs(git_repo: Path, tmp_path: Path, marker: Path, key: str,
                             value: str) -> None:  # fmt: skip
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    for name in ("pre-commit", "commit-msg", "post-commit", "post-checkout",
                 "reference-transaction", "post-index-change"):  # fmt: skip
        (hooks / name).write_text(f"#!/bin/sh\ntouch {marker}\n")
        (hooks / name).chmod(0o755)
    (git_repo / ".gitattributes").write_text("* diff=evil merge=evil\n")
    (git_repo / "shared.txt").write_text("one\n")
    git(git_repo, "add", "-A")
    git(git_repo, "commit", "-qm", "attributes")
    git(git_repo, "config", key, value.format(evil=_evil(marker), hooks=hooks))
    if key == "gpg.program":
        git(git_repo, "config", "commit.gpgSign", "true")
    if key == "log.showSignature":
        git(git_repo, "config", "gpg.program", _evil(marker))
    ws = Workspace(git_repo)
    base = ws.head()
    ws.create_branch("karma/r1", base)
    one = ws.add_worktree("r1/a-1", "karma-work/r1/a-1", base)
    two = ws.add_worktree("r1/b-1", "karma-work/r1/b-1", base)
    (one.path / "shared.txt").write_text("one\ntwo\n")
    (two.path / "shared.txt").write_text("zero\none\n")
    for wt in (one, two):
        ws.changed_files(wt)
    c1, c2 = ws.commit(one, "a", {}), ws.commit(two, "b", {})
    assert c1 and c2
    assert ws.integrate("karma/r1", c1, "a").commit
    second = ws.integrate("karma/r1", c2, "b")  # a content merge: a merge driver's moment
    head = second.commit or c1
    ws.log_trailers("karma/r1", base)
    ws.diff(base, head)
    ctx = GateContext(repo=one.path, base=base, config=KarmaConfig(), head=head,
                      git_dir=ws.git_dir)  # fmt: skip
    diff_text(ctx)
    with base_worktree(ctx):
        pass
    # the user's working tree (`karma gate`): in-tree attributes apply there
    (git_repo / "shared.txt").write_text("one\nlocal\n")
    working = GateContext(repo=git_repo, base=base, config=KarmaConfig())
    assert "+local" in diff_text(working) and changed_paths(working) == ["shared.txt"]
    hg = HostGit(ws.git_dir)
    hg.completed("ls-remote", "ssh://example.invalid/x")
    hg.completed("ls-remote", f"file://{git_repo}")
    hg.completed("blame", "HEAD", "--", "shared.txt")
    for path in (one.path, two.path):
        ws.remove_worktree(path)
    assert not marker.exists(), key


def test_staging_runs_no_nested_config_when_a_repo_appears_after_the_scan(
    git_repo: Path, marker: Path
) -> None:
    """Defence in depth (the sandbox is still up while the host stages): with the scan
    skipped, staging refuses an untracked nested repo it meets and runs nothing of a
    populated submodule's config, however often it stages."""
    ws = Workspace(git_repo)
    wt = ws.add_worktree("r1/a-1", "karma-work/r1/a-1", ws.head())
    sub = wt.path / "vendor"
    sub.mkdir()
    git(sub, "init", "-q")
    (sub / "f.txt").write_text("x\n")
    git(sub, "add", "f.txt")
    git(sub, "-c", "user.name=u", "-c", "user.email=u@u", "commit", "-qm", "v")
    git(sub, "config", "core.fsmonitor", _evil(marker))
    git(sub, "config", "filter.x.clean", _evil(marker))
    git(sub, "config", "diff.evil.textconv", _evil(marker))
    (sub / ".git" / "info").mkdir(exist_ok=True)
    (sub / ".git" / "info" / "attributes").write_text("* filter=x diff=evil\n")
    (wt.path / "a.py").write_text("A = 1\n")
    with pytest.raises(NestedRepository, match="vendor/"):
        ws._stage(wt)  # the scan's second line: git lists the repo as `vendor/`
    # the same repo already recorded as a gitlink (a submodule of the base)
    tree = HostGit(wt.git_dir, wt.path)
    tree.run(
        "update-index", "--add", "--cacheinfo", f"160000,{git(sub, 'rev-parse', 'HEAD')},vendor"
    )
    for text in ("y\n", "z\n", "w\n"):  # same size: git would hash them to compare
        (sub / "f.txt").write_text(text)
        (sub / "g.txt").write_text(text)
        assert "a.py" in ws._stage(wt)
        assert ws.commit(wt, "task", {}) or True
        tree.run("diff", "HEAD")
        tree.run("status", "--porcelain")
    assert not marker.exists()


def test_the_users_home_config_is_not_read(
    git_repo: Path, tmp_path: Path, marker: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    (home / ".config" / "git").mkdir(parents=True)
    evil = f"[core]\n\tfsmonitor = {_evil(marker)}\n\tattributesFile = {home}/attrs\n"
    (home / ".gitconfig").write_text(evil + f"[diff]\n\texternal = {_evil(marker)}\n")
    (home / ".config" / "git" / "config").write_text(evil)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.delenv("GIT_CONFIG_GLOBAL", raising=False)
    ws = Workspace(git_repo)
    wt = ws.add_worktree("r1/a-1", "karma-work/r1/a-1", ws.head())
    (wt.path / "a.py").write_text("A = 1\n")
    assert ws.changed_files(wt) == ["a.py"]
    commit = ws.commit(wt, "task", {})
    assert commit and "+A = 1" in ws.diff(wt.base, commit)
    assert not marker.exists()
