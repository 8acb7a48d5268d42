"""`karma gate` on a pull request's checkout: the suite, stack and config that judge the
change come from the base commit and the user, never from the change itself."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from karma.cli import main
from tests.gates.conftest import git, make_repo, write

BASE_SUITE = (
    'order = ["secrets", "approval"]\n[gates.secrets]\nblocking = true\n'
    "[gates.approval]\nblocking = false\n"
    'paths = [".karma/**", "karma.toml"]\nconfig_lines = { "**/.gitignore" = ["karma"] }\n'
    'modes = ["120000"]\n'
)


def _evil_suite(marker: Path) -> str:
    return (
        f'order = ["tests", "approval"]\n[gates.tests]\ncommand = "touch {marker} #"\n'
        'where = "host"\n[gates.approval]\nenabled = false\n'
    )


@pytest.fixture
def pr_checkout(tmp_path: Path) -> tuple[Path, str, Path]:
    """A repository whose base keeps its own suite in `.karma/`, checked out at a head
    that replaces it (and adds the same in karma.toml and [tool.karma])."""
    marker = tmp_path / "pwned"
    repo = make_repo(tmp_path / "r", {
        "app.py": "x = 1\n",
        ".gitignore": "!/.karma/\n",
        ".karma/quality_gates/default.toml": BASE_SUITE,
        "pyproject.toml": '[project]\nname = "x"\nversion = "0"\n',
    })  # fmt: skip
    base = git(repo, "rev-parse", "HEAD")
    overrides = (
        f'[gates.overrides.tests]\ncommand = "touch {marker} #"\nwhere = "host"\n'
        "[gates.overrides.approval]\nenabled = false\n"
    )
    write(repo, {
        ".karma/quality_gates/default.toml": _evil_suite(marker),
        ".karma/recipes/stacks/python.toml": (
            'name = "python"\ndetect = ["*"]\nsandbox = "python"\n'
            f'test_command = "touch {marker} #"\n'
        ),
        "karma.toml": overrides,
        "pyproject.toml": '[project]\nname = "x"\nversion = "0"\n'
        + overrides.replace("[gates", "[tool.karma.gates"),
    })  # fmt: skip
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "the pull request")
    return repo, base, marker


@pytest.mark.parametrize("trust", [False, True])
def test_gate_on_a_pr_uses_the_base_suite_and_config(
    pr_checkout: tuple[Path, str, Path], capsys: pytest.CaptureFixture[str], trust: bool
) -> None:
    """Even with the user's opt-in, "the repository's config" is the base's: the head's
    karma.toml and [tool.karma] are the change under check, and never read."""
    repo, base, marker = pr_checkout
    extra = ["--trust-repo-config"] if trust else []
    code = main(["-C", str(repo), "gate", "--base", base, "--format", "json", *extra])
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert not marker.exists()
    assert [g["name"] for g in report["gates"]] == ["secrets", "approval"]  # the base's
    approval = next(g for g in report["gates"] if g["name"] == "approval")
    assert {f["path"] for f in approval["findings"]} == {
        ".karma/quality_gates/default.toml",
        ".karma/recipes/stacks/python.toml",
        "karma.toml",
    }
    assert report["needs_approval"] is True and code == 0
    assert "is ignored" not in captured.err  # not even read


def test_gate_takes_the_base_config_and_drops_its_security_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The base's own karma.toml is the repository's config: ordinary keys are taken,
    security keys only with the opt-in; the working tree's edits of it are not read."""
    marker = tmp_path / "pwned"
    toml = (
        '[gates]\nsuite = "default"\n[gates.overrides.tests]\n'
        f'command = "touch {marker} #"\nwhere = "host"\n'
    )
    repo = make_repo(tmp_path / "r", {"app.py": "x = 1\n", "karma.toml": toml})
    base = git(repo, "rev-parse", "HEAD")
    write(repo, {"karma.toml": toml.replace("[gates.overrides.tests]", "[build]\njobs = 2\n"
                                            "[gates.overrides.tests]")})  # fmt: skip
    main(["-C", str(repo), "gate", "--base", base, "--only", "tests", "--format", "json"])
    captured = capsys.readouterr()
    assert not marker.exists()
    assert f"{base[:12]}:karma.toml: gates.overrides.tests.command is ignored" in captured.err
    main(["-C", str(repo), "gate", "--base", base, "--only", "tests", "--trust-repo-config"])
    assert marker.exists()  # the user's own choice, about the base's own file


@pytest.mark.parametrize("trust", [False, True])
def test_a_head_adding_karma_data_gets_the_built_in_suite_and_stack(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], trust: bool
) -> None:
    """No `.karma/` at the base: the head's suite and stack are never used, even when the
    user trusts the repository's config (which is karma.toml and [tool.karma] only)."""
    marker = tmp_path / "pwned"
    repo = make_repo(tmp_path / "r", {"pyproject.toml": '[project]\nname = "x"\n'})
    base = git(repo, "rev-parse", "HEAD")
    write(repo, {
        ".gitignore": "!/.karma/\n",
        ".karma/quality_gates/default.toml": _evil_suite(marker),
        ".karma/recipes/stacks/python.toml": (
            'name = "python"\ndetect = ["*"]\nsandbox = "python"\n'
            f'test_command = "touch {marker} #"\n'
        ),
    })  # fmt: skip
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "the pull request")
    extra = ["--trust-repo-config"] if trust else []
    main(["-C", str(repo), "gate", "--base", base, "--format", "json", "--only", "tests,approval",
          *extra])  # fmt: skip
    report = json.loads(capsys.readouterr().out)
    assert not marker.exists()
    assert [g["name"] for g in report["gates"]] == ["tests", "approval"]  # built-in order
    approval = report["gates"][1]
    assert {f["path"] for f in approval["findings"]} == {
        ".gitignore",
        ".karma/quality_gates/default.toml",
        ".karma/recipes/stacks/python.toml",
    }
