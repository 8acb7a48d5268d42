"""The issue's acceptance case: one change, four problems, each in the right gate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from karma.advisories import AdvisoryServer
from karma.cli import main
from tests.gates.conftest import FAKE_ANTHROPIC_KEY, FAKE_AWS_KEY, gate_toml, make_repo, write

BASE_FILES = {
    "requirements.txt": "click==8.1.7\n",
    "app.py": "def add(a, b):\n    return a + b\n",
    "tests/test_app.py": "from app import add\n\n\ndef test_add():\n    assert add(1, 2) == 3\n",
    "pyproject.toml": (
        '[project]\nname = "fixture"\nversion = "0"\n\n'
        '[tool.pytest.ini_options]\npythonpath = ["."]\n'
    ),
}

CHANGE = {
    "requirements.txt": "click==8.1.7\nrequests==2.19.0\n",
    "app.py": (
        "def add(a, b):\n    return a + b\n\n\ndef calc():\n    return eval(input('expr: '))\n"
    ),
    "settings.py": (
        f'AWS_ACCESS_KEY_ID = "{FAKE_AWS_KEY}"\nANTHROPIC_KEY = "{FAKE_ANTHROPIC_KEY}"\n'
    ),
    "tests/test_app.py": (
        "from app import add\n\n\ndef test_add():\n    assert add(1, 2) == 3\n\n\n"
        "def test_add_negative():\n    assert add(-1, -1) == -3\n"
    ),
}


@pytest.fixture
def fixture_repo(tmp_path: Path, osv: AdvisoryServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    repo = make_repo(
        tmp_path / "repo", BASE_FILES, gate_toml("[gates.overrides.review]\nenabled = false\n")
    )
    write(repo, CHANGE)
    monkeypatch.setenv("KARMA_OSV_URL", osv.url)
    # The fixture's karma.toml runs tests on the host: its owner trusts it.
    monkeypatch.setenv("KARMA_TRUST_REPO_CONFIG", "1")
    return repo


def run(repo: Path, *args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["-C", str(repo), "gate", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_json_lists_each_problem_in_its_gate(
    fixture_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(fixture_repo, "--format", "json", capsys=capsys)
    report = json.loads(out)
    assert code == 1
    assert report["status"] == "failed"
    assert (
        report["base"]
        == __import__("subprocess")
        .run(["git", "rev-parse", "HEAD"], cwd=fixture_repo, capture_output=True, text=True)
        .stdout.strip()
    )
    gates = {g["name"]: g for g in report["gates"]}
    assert set(gates) == {"secrets", "sast", "audit", "tests", "bench", "approval"}
    for gate in report["gates"]:
        assert set(gate) >= {"name", "status", "blocking", "duration_s", "findings"}
        for finding in gate["findings"]:
            assert set(finding) >= {"rule", "severity", "path", "line", "message"}

    assert gates["sast"]["status"] == "failed"
    assert [(f["rule"], f["path"], f["line"]) for f in gates["sast"]["findings"]] == [
        ("karma.eval-exec-input", "app.py", 6)
    ]
    assert gates["secrets"]["status"] == "failed"
    assert {(f["rule"], f["path"], f["line"]) for f in gates["secrets"]["findings"]} == {
        ("secrets.aws-access-key-id", "settings.py", 1),
        ("secrets.anthropic-api-key", "settings.py", 2),
    }
    assert gates["audit"]["status"] == "failed"
    audit = {f["rule"] for f in gates["audit"]["findings"]}
    assert {"PYSEC-2018-28", "PYSEC-2023-74"} <= audit
    assert all(
        f["path"] == "requirements.txt" and f["line"] == 2 for f in gates["audit"]["findings"]
    )
    assert gates["tests"]["status"] == "failed"
    assert [f["rule"] for f in gates["tests"]["findings"]] == ["tests.failure"]
    assert "test_add_negative" in gates["tests"]["findings"][0]["message"]
    assert gates["bench"]["status"] == "skipped"
    assert gates["approval"]["status"] == "warning" and not gates["approval"]["blocking"]
    # The values never reach any output.
    for text in (out, err):
        assert FAKE_AWS_KEY not in text and FAKE_ANTHROPIC_KEY not in text


def test_sarif_has_what_code_scanning_requires(
    fixture_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(fixture_repo, "--format", "sarif", capsys=capsys)
    sarif = json.loads(out)
    assert code == 1
    assert sarif["version"] == "2.1.0"
    assert sarif["$schema"].endswith("sarif-2.1.0.json")
    (run_,) = sarif["runs"]
    driver = run_["tool"]["driver"]
    rule_ids = [rule["id"] for rule in driver["rules"]]
    assert driver["name"] == "KARMA" and len(rule_ids) == len(set(rule_ids))
    assert {"karma.eval-exec-input", "secrets.aws-access-key-id", "PYSEC-2018-28"} <= set(rule_ids)
    for result in run_["results"]:
        assert result["ruleId"] in rule_ids
        assert rule_ids[result["ruleIndex"]] == result["ruleId"]
        assert result["message"]["text"]
        (location,) = result["locations"]
        uri = location["physicalLocation"]["artifactLocation"]["uri"]
        assert not uri.startswith("/") and "\\" not in uri and (fixture_repo / uri).is_file()
        assert location["physicalLocation"]["region"]["startLine"] >= 1
    assert FAKE_AWS_KEY not in out and FAKE_ANTHROPIC_KEY not in out


@pytest.mark.parametrize("fmt", ["text", "markdown"])
def test_human_formats_are_redacted(
    fixture_repo: Path, capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    code, out, err = run(fixture_repo, "--format", fmt, "--only", "secrets", capsys=capsys)
    assert code == 1
    assert "secrets.aws-access-key-id" in out
    for text in (out, err):
        assert FAKE_AWS_KEY not in text and FAKE_ANTHROPIC_KEY not in text
