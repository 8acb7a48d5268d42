"""Suites are data: loading, overrides, typos named, and the `karma gate` CLI contract."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from karma.cli import main
from karma.errors import ConfigError
from karma.gates import load_suite
from karma.gates.suite import semgrep_rules_dir
from karma.home import DataRoots
from tests.gates.conftest import make_repo, write


def test_default_suite_order_and_blocking() -> None:
    suite = load_suite()
    assert [g.name for g in suite.gates] == [
        "secrets",
        "sast",
        "audit",
        "tests",
        "bench",
        "approval",
        "review",
    ]
    assert {g.name: g.blocking for g in suite.gates}["approval"] is False
    assert (
        suite.settings("bench") is not None and suite.settings("bench").get("threshold_pct") == 10.0
    )  # type: ignore[union-attr]


def test_overrides_apply_and_typos_fail_loudly() -> None:
    suite = load_suite(overrides={"bench": {"threshold_pct": 5}, "review": {"enabled": False}})
    assert suite.settings("bench").get("threshold_pct") == 5  # type: ignore[union-attr]
    assert suite.settings("review") is None
    with pytest.raises(ConfigError, match=r"gates\.bench\.treshold_pct: unknown key"):
        load_suite(overrides={"bench": {"treshold_pct": 5}})
    with pytest.raises(ConfigError, match="unknown gate 'lint'"):
        load_suite(overrides={"lint": {}})
    with pytest.raises(ConfigError, match="no gate suite 'strict'"):
        load_suite("strict")


def test_project_suite_from_its_own_quality_gates(tmp_path: Path) -> None:
    strict = 'order = ["secrets"]\n[gates.secrets]\nblocking = false\n'
    write(tmp_path, {".karma/quality_gates/strict.toml": strict})
    suite = load_suite("strict", roots=DataRoots.of_checkout(tmp_path))
    assert [(g.name, g.blocking) for g in suite.gates] == [("secrets", False)]
    # What the project does not override comes from the built-in folder.
    assert len(load_suite("default", roots=DataRoots.of_checkout(tmp_path)).gates) == 7
    assert semgrep_rules_dir(DataRoots.of_checkout(tmp_path)).is_dir()


def test_cli_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-C", str(tmp_path), "gate"]) == 2  # not a git repository
    repo = make_repo(tmp_path / "r", {"a.py": "x = 1\n"})
    assert main(["-C", str(repo), "gate", "--format", "xml"]) == 2
    assert main(["-C", str(repo), "gate", "--only", "lint"]) == 2
    assert main(["-C", str(repo), "gate", "--base", "no-such-ref"]) == 2
    err = capsys.readouterr().err
    assert "unknown format" in err and "unknown gate" in err and "no-such-ref" in err


def test_cli_clean_change_exits_zero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = make_repo(tmp_path / "r", {"a.py": "x = 1\n"})
    write(repo, {"a.py": "x = 2\n"})
    code = main(
        ["-C", str(repo), "gate", "--only", "secrets", "--only", "sast", "--format", "json", "--ci"]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    report = json.loads(captured.out)
    assert report["status"] == "passed"
    assert [g["name"] for g in report["gates"]] == ["secrets", "sast"]
    out = tmp_path / "gates.sarif"
    assert main(["-C", str(repo), "gate", "--only", "secrets", "-f", "sarif", "-o", str(out)]) == 0
    assert json.loads(out.read_text())["version"] == "2.1.0"
