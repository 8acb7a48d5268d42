"""The approval gate: critical paths put the result in needs_approval, they do not fail it."""

from __future__ import annotations

from pathlib import Path

import pytest

from karma.config import KarmaConfig
from karma.gates import GateContext, load_suite, run_suite
from tests.gates.conftest import git, make_repo, write


def test_critical_paths_need_approval(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"app.py": "x = 1\n", "db/migrations/0001.py": "x = 1\n"})
    write(
        repo,
        {".github/workflows/ci.yml": "on: push\n", "src/auth.py": "x = 1\n", "app.py": "x = 2\n"},
    )
    (repo / "db/migrations/0001.py").unlink()
    ctx = GateContext(repo=repo, base=git(repo, "rev-parse", "HEAD"), config=KarmaConfig())
    result = run_suite(ctx, load_suite().only(("approval",)))
    gate = result.result("approval")
    assert gate is not None and gate.status == "warning"
    assert {f.path for f in gate.findings} == {
        ".github/workflows/ci.yml",
        "db/migrations/0001.py",
        "src/auth.py",
    }
    assert all("a human must approve" in f.message for f in gate.findings)
    assert result.needs_approval and result.status == "passed"
    assert result.as_json()["needs_approval"] is True


def test_extra_paths_and_no_match(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"app.py": "x = 1\n"})
    write(repo, {"app.py": "x = 2\n"})
    ctx = GateContext(repo=repo, base=git(repo, "rev-parse", "HEAD"), config=KarmaConfig())
    plain = run_suite(ctx, load_suite().only(("approval",)))
    assert plain.outcomes[0].result.status == "passed" and not plain.needs_approval
    extra = load_suite(overrides={"approval": {"extra_paths": ["app.py"]}}).only(("approval",))
    assert run_suite(ctx, extra).needs_approval


def _approval(repo: Path, head: str | None = None, base: str | None = None) -> dict[str, str]:
    base = base or git(repo, "rev-parse", "HEAD")
    ctx = GateContext(repo=repo, base=base, config=KarmaConfig(), head=head)
    result = run_suite(ctx, load_suite().only(("approval",)))
    gate = result.result("approval")
    assert gate is not None
    assert result.needs_approval == bool(gate.findings)
    return {f.path: f.message for f in gate.findings}


PYPROJECT = (
    '[project]\nname = "x"\nversion = "0"\n\n[tool.pytest.ini_options]\naddopts = "-q"\n\n'
    "[tool.karma.build]\njobs = 2\n"
)


@pytest.mark.parametrize(
    ("files", "path", "why"),
    [
        ({"karma.toml": "[build]\njobs = 1\n"}, "karma.toml", "karma.toml"),
        ({".karma/quality_gates/default.toml": "order = []\n"},
         ".karma/quality_gates/default.toml", ".karma/**"),
        ({"pytest.ini": "[pytest]\n"}, "pytest.ini", "pytest.ini"),
        ({"tox.ini": "[tox]\n"}, "tox.ini", "tox.ini"),
        ({".gitattributes": "*.py filter=x\n"}, ".gitattributes", ".gitattributes"),
        ({"sub/.gitattributes": "* diff=x\n"}, "sub/.gitattributes", ".gitattributes"),
        ({".gitmodules": "[submodule \"x\"]\n"}, ".gitmodules", ".gitmodules"),
        ({".gitlab-ci.yml": "x: 1\n"}, ".gitlab-ci.yml", ".gitlab-ci.yml"),
        ({".github/actions/a/action.yml": "x: 1\n"}, ".github/actions/a/action.yml", "actions"),
        ({"pyproject.toml": PYPROJECT.replace("jobs = 2", "jobs = 3")}, "pyproject.toml",
         "[tool.karma] configuration changed"),
        ({"pyproject.toml": PYPROJECT.replace('"-q"', '"-p evil"')}, "pyproject.toml",
         "[tool.pytest] configuration changed"),
        ({"pyproject.toml": PYPROJECT + "[tool.pytest.x]\ny = 1\n"}, "pyproject.toml",
         "[tool.pytest]"),
        ({"pyproject.toml": "[tool.karma\n"}, "pyproject.toml", "cannot be parsed"),
        ({"setup.cfg": "[tool:pytest]\naddopts = -p evil\n"}, "setup.cfg", "[tool:pytest]"),
        ({".gitignore": "*.pyc\n!/.karma/\n"}, ".gitignore", "'!/.karma/'"),
        ({"sub/.gitignore": "!.karma\n"}, "sub/.gitignore", "'!.karma'"),
    ],
)  # fmt: skip
def test_every_kind_of_critical_path_needs_approval(
    tmp_path: Path, files: dict[str, str], path: str, why: str
) -> None:
    base_files = {"app.py": "x = 1\n", "pyproject.toml": PYPROJECT, ".gitignore": "*.pyc\n",
                  "setup.cfg": "[metadata]\nname = x\n"}  # fmt: skip
    repo = make_repo(tmp_path / "r", base_files)
    base = git(repo, "rev-parse", "HEAD")
    write(repo, files)
    found = _approval(repo)  # the working tree (karma gate)
    assert set(found) == {path} and why in found[path], found
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "change")
    found = _approval(repo, head=git(repo, "rev-parse", "HEAD"), base=base)  # a build's head
    assert set(found) == {path} and why in found[path], found


def test_ordinary_edits_of_config_files_do_not_need_approval(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"pyproject.toml": PYPROJECT, ".gitignore": "*.pyc\n",
                                      "setup.cfg": "[metadata]\nname = x\n"})  # fmt: skip
    write(repo, {
        "pyproject.toml": PYPROJECT.replace('version = "0"', 'version = "1"')
        + "\n# a comment\n",
        ".gitignore": "*.pyc\nbuild/\n",
        "setup.cfg": "[metadata]\nname = y\n",
        "conftest.py": "import pytest\n\n\n@pytest.fixture\ndef thing():\n    return 1\n",
    })  # fmt: skip
    assert _approval(repo) == {}


def test_symlinks_and_gitlinks_need_approval(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"app.py": "x = 1\n"})
    base = git(repo, "rev-parse", "HEAD")
    (repo / "data").symlink_to("/etc")
    found = _approval(repo)
    assert set(found) == {"data"} and "a symlink" in found["data"]
    git(repo, "add", "-A")
    sub = make_repo(tmp_path / "sub", {"s.py": "s = 1\n"})
    git(repo, "update-index", "--add", "--cacheinfo",
        f"160000,{git(sub, 'rev-parse', 'HEAD')},vendor/sub")  # fmt: skip
    git(repo, "commit", "-qm", "links")
    found = _approval(repo, head=git(repo, "rev-parse", "HEAD"), base=base)
    assert set(found) == {"data", "vendor/sub"}
    assert "git mode 160000" in found["vendor/sub"]
