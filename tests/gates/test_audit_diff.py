"""The audit gate is diff-aware: no dependency file changed, no query; any change to one
(at any depth, added, edited or deleted, committed or not) is audited."""

from __future__ import annotations

from pathlib import Path

import pytest

from karma.config import KarmaConfig
from karma.gates import GateContext, load_suite, run_suite
from karma.recipes import load_stacks
from tests.conftest import unavailable
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
    stack = next(s for s in load_stacks() if s.name == "python")
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


SHIPPED = Path(__file__).resolve().parents[2] / "examples" / "advisories"
MIRROR = Path(__file__).resolve().parents[3] / "shared" / "advisories" / "pypa-advisory-database"


def test_the_shipped_advisories_are_the_databases(tmp_path: Path) -> None:
    """Copied, never written by hand: each package folder is whole and each entry is the
    database's (when a mirror is beside the clone to compare with); source and licence named."""
    import json

    from karma.advisories import _json_value, _load

    readme = (SHIPPED / "README.md").read_text()
    assert "https://github.com/pypa/advisory-database" in readme and "CC-BY 4.0" in readme
    assert "Attribution 4.0 International" in (SHIPPED / "LICENSE").read_text()
    packages = sorted(p.name for p in (SHIPPED / "vulns").iterdir())
    assert packages == ["idna", "jinja2", "pyyaml", "requests", "urllib3"]
    if not MIRROR.is_dir():
        unavailable("no mirror of the database beside the clone to compare with")
    assert (SHIPPED / "LICENSE").read_bytes() == (MIRROR / "LICENSE").read_bytes()
    for package in packages:
        theirs = sorted((MIRROR / "vulns" / package).glob("*.yaml"))
        ours = sorted((SHIPPED / "vulns" / package).glob("*.json"))
        assert [p.stem for p in ours] == [p.stem for p in theirs]
        for mine, original in zip(ours, theirs, strict=True):
            expected = json.loads(json.dumps(_load(original), default=_json_value))
            assert json.loads(mine.read_text()) == expected, mine


def test_a_dependency_change_is_audited_against_the_shipped_advisories(tmp_path: Path) -> None:
    from karma.advisories import serving

    repo = make_repo(tmp_path / "r", {"app.py": "x = 1\n"})
    write(repo, {"requirements.txt": "requests==2.19.0\n"})
    with serving(SHIPPED) as osv:
        config = KarmaConfig.model_validate({"gates": {"audit": {"osv_url": osv.url}}})
        ctx = GateContext(repo=repo, base=git(repo, "rev-parse", "HEAD"), config=config)
        gate = run_suite(ctx, load_suite().only(("audit",))).result("audit")
    assert gate is not None and gate.status == "failed"
    assert {f.rule for f in gate.findings if f.new} == {"PYSEC-2018-28", "PYSEC-2023-74"}
