"""Host-side gates read the tree under check; a symlink in it must not lead them out.

A model can leave `leak -> /root/.ssh/id_rsa` or `env -> /proc/self/environ` in its
worktree (or commit it): the secrets and sast gates run on the host and must neither read
the target nor echo it into findings or logs; a FIFO must not hang them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from karma.config import KarmaConfig
from karma.gates import GateContext, GateResult, load_suite, run_suite
from karma.gates.interface import GateUnavailable
from tests.gates.conftest import git, make_repo, write

FAKE_PRIVATE_KEY = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAAfakefakefake\n"
    "-----END OPENSSH PRIVATE KEY-----\n"
)
FAKE_GITHUB_TOKEN = "ghp_" + "Q7wErTyUiOpAsDfGhJkLzXcVbNm1234567890"
EVAL = "def calc():\n    return eval(input())\n"


def gate(repo: Path, name: str, head: str | None = None) -> GateResult:
    base = git(repo, "rev-parse", "HEAD~1" if head else "HEAD")
    ctx = GateContext(repo=repo, base=base, config=KarmaConfig(), head=head)
    result = run_suite(ctx, load_suite().only((name,))).result(name)
    assert result is not None
    return result


@pytest.fixture
def host_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Files outside the repository, standing for the host's own."""
    outside = tmp_path / "host"
    outside.mkdir()
    (outside / "id_rsa").write_text(FAKE_PRIVATE_KEY)
    (outside / "evil.py").write_text(EVAL)
    monkeypatch.setenv("KARMA_PROBE_TOKEN", FAKE_GITHUB_TOKEN)  # in /proc/self/environ
    return outside


def plant_links(repo: Path, outside: Path) -> None:
    (repo / "leak.txt").symlink_to(outside / "id_rsa")
    (repo / "env.txt").symlink_to("/proc/self/environ")
    (repo / "keys").symlink_to(outside)  # a folder link: keys/id_rsa is "in" the tree
    (repo / "sub").mkdir()
    (repo / "sub" / "deep.py").symlink_to(outside / "evil.py")
    (repo / "app_link.py").symlink_to(outside / "evil.py")
    os.mkfifo(repo / "pipe.txt")


def test_secrets_does_not_follow_untracked_symlinks(tmp_path: Path, host_secrets: Path) -> None:
    repo = make_repo(tmp_path / "r", {"a.py": "x = 1\n"})
    plant_links(repo, host_secrets)
    result = gate(repo, "secrets")
    assert result.status == "passed", result.findings
    assert FAKE_GITHUB_TOKEN not in str(result)
    # The same content as a regular file of the change is found (the gate does work).
    write(repo, {"copied.txt": FAKE_PRIVATE_KEY})
    found = gate(repo, "secrets")
    assert [(f.rule, f.path) for f in found.findings] == [("secrets.private-key", "copied.txt")]


def test_secrets_reads_a_committed_symlink_as_its_path(tmp_path: Path, host_secrets: Path) -> None:
    repo = make_repo(tmp_path / "r", {"a.py": "x = 1\n"})
    (repo / "leak.txt").symlink_to(host_secrets / "id_rsa")
    (repo / "env.txt").symlink_to("/proc/self/environ")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "links")
    result = gate(repo, "secrets", head="HEAD")
    assert result.status == "passed", result.findings


def test_sast_does_not_scan_through_symlinks(tmp_path: Path, host_secrets: Path) -> None:
    repo = make_repo(tmp_path / "r", {"a.py": "x = 1\n"})
    plant_links(repo, host_secrets)
    write(repo, {"a.py": "x = 2\n"})
    result = gate(repo, "sast")
    assert result.status == "passed", result
    assert not result.findings
    # A regular file with the same code is scanned and found.
    write(repo, {"real.py": EVAL})
    found = gate(repo, "sast")
    assert found.status == "failed" and {f.path for f in found.findings} == {"real.py"}


def test_sast_skips_a_committed_symlink(tmp_path: Path, host_secrets: Path) -> None:
    repo = make_repo(tmp_path / "r", {"a.py": "x = 1\n"})
    (repo / "app_link.py").symlink_to(host_secrets / "evil.py")
    write(repo, {"a.py": "x = 2\n"})
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "link")
    result = gate(repo, "sast", head="HEAD")
    assert result.status == "passed" and not result.findings, result


def test_a_throwaway_copy_keeps_links_as_links_and_leaves_out_git_and_fifos(
    tmp_path: Path, host_secrets: Path
) -> None:
    from karma.gates.files import copy_tree

    repo = make_repo(tmp_path / "r", {"a/b.py": "x = 1\n"})
    plant_links(repo, host_secrets)
    copy = tmp_path / "copy"
    copy_tree(repo, copy)
    assert sorted(p.name for p in copy.iterdir()) == [
        "a", "app_link.py", "env.txt", "keys", "leak.txt", "sub"
    ]  # fmt: skip
    assert (copy / "leak.txt").is_symlink() and (copy / "keys").is_symlink()
    assert (copy / "a" / "b.py").read_text() == "x = 1\n"
    with pytest.raises(GateUnavailable, match="too large"):
        copy_tree(repo, tmp_path / "small", limit=2)


def test_the_diff_for_the_reviewer_does_not_follow_untracked_symlinks(
    tmp_path: Path, host_secrets: Path
) -> None:
    from karma.gates.change import diff_text

    repo = make_repo(tmp_path / "r", {"a.py": "x = 1\n"})
    plant_links(repo, host_secrets)
    write(repo, {"new.py": "y = 2\n"})
    ctx = GateContext(repo=repo, base=git(repo, "rev-parse", "HEAD"), config=KarmaConfig())
    text = diff_text(ctx)
    assert "+y = 2" in text  # a regular untracked file is in the diff
    assert "PRIVATE KEY" not in text and "eval(input())" not in text
    assert FAKE_GITHUB_TOKEN not in text
