"""The audit gate is diff-aware: no dependency file changed, no query; any change to one
(at any depth, added, edited or deleted, committed or not) is audited."""

from __future__ import annotations

from pathlib import Path

import pytest

from karma.config import KarmaConfig
from karma.gates import GateContext, load_suite, run_suite
from karma.recipes import load_stacks
from tests.gates.conftest import git, make_repo, write

BASE = {"app.py": "x = 1\n", "requirements.txt": "requests==2.31.0\n", "sub/README.md": "hi\n"}


def audit(tmp_path: Path, change: dict[str, str | None], *, commit: bool = True) -> tuple[str, str]:
    """The audit's (status, summary) on a change, with pip-audit unrunnable and no service:
    an audit that really ran ends in `error`, one that needed no query passes."""
    repo = make_repo(tmp_path / "r", BASE)
    base = git(repo, "rev-parse", "HEAD")
    for rel, text in change.items():
        if text is None:
            (repo / rel).unlink()
        else:
            write(repo, {rel: text})
    head = None
    if commit:
        git(repo, "add", "-A")
        git(repo, "commit", "-qm", "change")
        head = git(repo, "rev-parse", "HEAD")
    config = KarmaConfig.model_validate(
        {"gates": {"audit": {"osv_url": "http://127.0.0.1:9/v1/query"}}}
    )
    stack = next(s for s in load_stacks(repo) if s.name == "python")
    ctx = GateContext(repo=repo, base=base, head=head, config=config, stack=stack)
    suite = load_suite(overrides={"audit": {"pip_audit": str(tmp_path / "no-pip-audit")}})
    gate = run_suite(ctx, suite.only(("audit",))).result("audit")
    assert gate is not None
    return gate.status, gate.summary


@pytest.mark.parametrize("commit", [True, False])
def test_no_dependency_change_passes_without_a_query(tmp_path: Path, commit: bool) -> None:
    status, summary = audit(
        tmp_path,
        {
            "app.py": "x = 2\n",
            "sub/README.md": "requirements\n",
            "docs/requirements.md": "pin things\n",
        },
        commit=commit,
    )
    assert status == "passed"
    assert "touches no dependency file" in summary and "no query" in summary


@pytest.mark.parametrize(
    "change",
    [
        {"requirements.txt": "requests==2.19.0\n"},
        {"requirements.txt": None},  # deleted
        {"requirements-dev.txt": "pytest==7.0.0\n"},
        {"requirements/prod.txt": "requests==2.19.0\n"},
        {"sub/pyproject.toml": "[project]\nname = 'sub'\ndependencies = ['requests==2.19.0']\n"},
        {"setup.py": "from setuptools import setup\nsetup(install_requires=['requests'])\n"},
        {"vendor/pkg/setup.cfg": "[options]\ninstall_requires = requests\n"},
        {"uv.lock": "version = 1\n"},
        {"constraints.txt": "requests==2.19.0\n"},
        {"Pipfile": "[packages]\nrequests = '*'\n"},
    ],
    ids=lambda change: next(iter(change)),
)
@pytest.mark.parametrize("commit", [True, False])
def test_any_dependency_change_is_audited(
    tmp_path: Path, change: dict[str, str | None], commit: bool
) -> None:
    status, summary = audit(tmp_path, change, commit=commit)
    assert status == "error" and "pip-audit" in summary  # it went on to run the audit
