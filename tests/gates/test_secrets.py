"""The secrets gate and `redact`: every credential kind found in a diff, never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from karma.config import KarmaConfig
from karma.gates import GateContext, load_suite, run_suite
from karma.gates.secrets import redact
from tests.gates.conftest import FAKE_ANTHROPIC_KEY, FAKE_AWS_KEY, git, make_repo, write

SAMPLES = {
    "secrets.anthropic-api-key": FAKE_ANTHROPIC_KEY,
    "secrets.openai-api-key": "sk-proj-" + "Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z",
    "secrets.github-token": "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8",
    "secrets.aws-access-key-id": FAKE_AWS_KEY,
    "secrets.slack-token": "xoxb-" + "1234567890-abcdefghijkl",
    "secrets.private-key": "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----",
}


@pytest.mark.parametrize(("rule", "value"), SAMPLES.items())
def test_redact_replaces_each_kind(rule: str, value: str) -> None:
    text = f"before {value} after"
    assert redact(text, environ={}) == f"before [REDACTED:{rule}] after"


def test_redact_generic_assignment_and_environment_values() -> None:
    line = 'db_password = "Zx8#qLw2!vR9tY4uP0sK"'
    assert redact(line, environ={}) == 'db_password = "[REDACTED:secrets.generic-high-entropy]"'
    assert (
        redact('name = "hello world this is fine"', environ={})
        == 'name = "hello world this is fine"'
    )
    low = 'password = "aaaaaaaaaaaaaaaaaaaa"'
    assert redact(low, environ={}) == low
    assert redact("key is custom-value-123", environ={"OPENAI_API_KEY": "custom-value-123"}) == (
        "key is [REDACTED:env.OPENAI_API_KEY]"
    )


def _ctx(repo: Path) -> GateContext:
    return GateContext(
        repo=repo, base=git(repo, "rev-parse", "HEAD~1"), config=KarmaConfig(), head="HEAD"
    )


def test_secret_in_test_fixture_and_commit_message_is_caught(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"a.py": "x = 1\n"})
    write(
        repo, {"tests/fixtures/creds.json": f'{{"token": "{SAMPLES["secrets.github-token"]}"}}\n'}
    )
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", f"add fixture\n\nusing {FAKE_AWS_KEY}")
    result = run_suite(_ctx(repo), load_suite().only(("secrets",)))
    gate = result.result("secrets")
    assert gate is not None and gate.status == "failed" and result.status == "failed"
    found = {(f.rule, f.path, f.line) for f in gate.findings}
    assert ("secrets.github-token", "tests/fixtures/creds.json", 1) in found
    assert ("secrets.aws-access-key-id", "", 0) in found
    assert any("commit message" in f.message for f in gate.findings)
    dumped = str(result.as_json())
    assert FAKE_AWS_KEY not in dumped and SAMPLES["secrets.github-token"] not in dumped


def test_clean_change_passes(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", {"a.py": "x = 1\n"})
    write(repo, {"a.py": "x = 2\nTOKEN_NAME = 'not-a-secret'\n"})
    git(repo, "commit", "-qam", "change")
    gate = run_suite(_ctx(repo), load_suite().only(("secrets",))).result("secrets")
    assert gate is not None and gate.status == "passed", gate


def test_the_value_of_a_host_secret_is_caught_whatever_its_shape(tmp_path: Path) -> None:
    from karma.text.redact import remember_host_secrets

    # A runner token that matches no pattern (no prefix, low entropy for its length).
    value = "plain-runner-token-without-any-known-shape-1234"
    remember_host_secrets({"ACTIONS_RUNTIME_TOKEN": value})
    repo = make_repo(tmp_path / "r", {"a.py": "x = 1\n"})
    write(repo, {"notes.txt": f"seen: {value}\n"})
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", f"notes\n\n{value}")
    result = run_suite(_ctx(repo), load_suite().only(("secrets",)))
    gate = result.result("secrets")
    assert gate is not None and gate.status == "failed"
    found = {(f.rule, f.path) for f in gate.findings}
    assert ("secrets.env.ACTIONS_RUNTIME_TOKEN", "notes.txt") in found
    assert ("secrets.env.ACTIONS_RUNTIME_TOKEN", "") in found
    assert value not in str(result.as_json())
