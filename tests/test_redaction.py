"""Redaction at the store and the bus: credentials and the host's secret values never get in."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from karma.events import Event, EventBus
from karma.models.codec import request_hash
from karma.models.interface import ModelRequest, UserMessage
from karma.store import Store
from karma.text.redact import redact, redact_json, redact_value, remember_host_secrets, secret_env

# Values no pattern knows: only the environment says they are secrets.
PLAIN_KEY = "q7Zr2mXv9LpT4wKd8sNb"
PLAIN_TOKEN = 'runtime.Token/with"quote\\and-slash'
GITHUB_TOKEN = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"


@pytest.fixture
def host_secrets(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = {
        "ANTHROPIC_API_KEY": PLAIN_KEY,
        "ACTIONS_RUNTIME_TOKEN": PLAIN_TOKEN,
        "GITHUB_TOKEN": GITHUB_TOKEN,
        "MY_SERVICE_PASSWORD": "correct-horse-battery",
        "DEPLOY_SECRET": "s3cr3t-value-x",
        "SHORT_TOKEN": "abc",  # too short to redact usefully
        "HOME_DIR": "/home/someone",  # not a secret by name
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    remember_host_secrets()
    return env


def test_secret_variables_are_chosen_by_name_and_length(host_secrets: dict[str, str]) -> None:
    found = secret_env(host_secrets)
    assert set(found) == {
        "ANTHROPIC_API_KEY",
        "ACTIONS_RUNTIME_TOKEN",
        "GITHUB_TOKEN",
        "MY_SERVICE_PASSWORD",
        "DEPLOY_SECRET",
    }


@pytest.mark.parametrize(
    "name", ["ANTHROPIC_API_KEY", "ACTIONS_RUNTIME_TOKEN", "MY_SERVICE_PASSWORD", "DEPLOY_SECRET"]
)
def test_host_secret_values_are_redacted_without_a_pattern(
    host_secrets: dict[str, str], name: str
) -> None:
    value = host_secrets[name]
    text = redact(f"the value is {value}!")
    assert value not in text
    assert f"[REDACTED:env.{name}]" in text


def test_a_secret_removed_from_the_environment_stays_redacted(
    host_secrets: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DEPLOY_SECRET")
    remember_host_secrets()
    assert "s3cr3t-value-x" not in redact("x s3cr3t-value-x y")


def test_json_is_redacted_string_by_string(host_secrets: dict[str, str]) -> None:
    # JSON escaping hides the quote and backslash of this value from a text search.
    data = {"a": [PLAIN_TOKEN, {"k": "password = 'Zx9!Qw8@Er7#Ty6$'"}], PLAIN_KEY: 1, "n": 2}
    text = json.dumps(data)
    assert PLAIN_TOKEN not in text  # escaped in the text
    clean = json.loads(redact_json(text))
    assert clean["n"] == 2
    blob = json.dumps(clean, ensure_ascii=False)
    assert PLAIN_TOKEN not in blob and PLAIN_KEY not in blob
    assert "Zx9!Qw8@Er7#Ty6$" not in blob
    assert redact_json("not json " + PLAIN_KEY) == "not json [REDACTED:env.ANTHROPIC_API_KEY]"


def test_a_match_across_two_strings_falls_back_to_each_string(host_secrets: dict[str, str]) -> None:
    value = ["-----BEGIN RSA PRIVATE KEY-----", "body", "-----END RSA PRIVATE KEY-----", "x"]
    clean = redact_value(value)
    assert len(clean) == 4 and clean[3] == "x"
    assert clean[0] == "[REDACTED:secrets.private-key]"


def _scan(db: Path, secrets: list[str]) -> list[str]:
    """Every secret found in the bytes of the store's files (main file, WAL, shared memory)."""
    blob = b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*"))
    return [s for s in secrets if s.encode() in blob or json.dumps(s)[1:-1].encode() in blob]


def test_no_write_path_of_the_store_keeps_a_secret(
    tmp_path: Path, host_secrets: dict[str, str]
) -> None:
    secrets = [PLAIN_KEY, PLAIN_TOKEN, GITHUB_TOKEN, "correct-horse-battery"]
    leak = " ".join(secrets)
    store = Store(tmp_path / "k.db")
    store.create_run("r1", f"build it {leak}", tmp_path, config_json=json.dumps({"k": leak}))
    store.update_run("r1", reason=f"failed: {leak}", plan_json=json.dumps([leak]))
    store.upsert_task("r1", "a", title=f"t {leak}", kind="code", status="running")
    store.upsert_task("r1", "a", reason=leak)
    attempt = store.add_attempt("r1", "a", 1, summary=leak, evidence_json=json.dumps({"l": leak}))
    store.update_attempt(attempt, remediation=leak)
    store.add_model_call(
        run_id="r1", seq=0, purpose="agent", model="m", request_hash="h",
        request_json=json.dumps({"m": leak}), reply_json=json.dumps({"t": leak}), error=leak,
    )  # fmt: skip
    store.add_step(
        run_id="r1", task_id="a", attempt=1, step=0, tool="run",
        arguments_json=json.dumps({"command": leak}), output=leak, is_error=0,
    )  # fmt: skip
    store.record_event(Event("log", "r1", "a", {"message": leak, "nested": [{"x": leak}]}))
    store.add_gate_result(
        "r1", name="g", status="failed", blocking=1, duration_s=0.1,
        findings_json=json.dumps([{"message": leak}]),
    )  # fmt: skip
    store.note_failure("sig", "test_failure", leak, hint=leak)
    store.add_outcome(pattern_id="p", failure_class="c", remediation=leak, outcome="resolved")
    with store.transaction() as db:
        db.execute("UPDATE runs SET reason = ? WHERE id = ?", (leak, "r1"))
    store.close()
    assert _scan(tmp_path / "k.db", secrets) == []
    rows = sqlite3.connect(tmp_path / "k.db").execute("SELECT reason FROM runs").fetchall()
    assert "[REDACTED:env.ANTHROPIC_API_KEY]" in rows[0][0]


def test_every_subscriber_sees_the_event_redacted(host_secrets: dict[str, str]) -> None:
    seen: list[Event] = []
    bus = EventBus()
    bus.subscribe(seen.append)
    emitted = bus.emit(
        "task_failed", "r1", "a", reason=f"key {PLAIN_KEY}", report={"lines": [GITHUB_TOKEN]}
    )
    assert seen == [emitted]
    text = repr(seen[0].data)
    assert PLAIN_KEY not in text and GITHUB_TOKEN not in text
    assert seen[0].data["reason"] == "key [REDACTED:env.ANTHROPIC_API_KEY]"


def _request(text: str) -> ModelRequest:
    return ModelRequest("sys", (UserMessage(text),), purpose="agent")


def test_a_request_and_its_redacted_replay_hash_the_same(host_secrets: dict[str, str]) -> None:
    original: Any = _request(f"the file holds {PLAIN_KEY}")
    replayed = _request("the file holds [REDACTED:env.ANTHROPIC_API_KEY]")
    assert request_hash(original) == request_hash(replayed)


def test_the_runner_masks_every_host_secret_variable() -> None:
    from karma.ci import mask_lines

    lines = mask_lines({"DEPLOY_TOKEN": "Tq3Wm8Zr2Lp5", "PATH": "/usr/bin:/bin", "X_SECRET": "ab"})
    assert lines == ["::add-mask::Tq3Wm8Zr2Lp5"]


_SAMPLES = [
    "sk-ant-api03-" + "a1B2c3D4e5F6g7H8i9J0k1L2",
    "key: sk-proj-" + "Q" * 30,
    "x" + "ghp_" + "A" * 36,
    "tok=ghs_" + "b1" * 20 + " github_pat_" + "c" * 30,
    "id AKIAABCDEFGHIJKLMNOP!",
    "AWS_SECRET_ACCESS_KEY = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEYa'",
    "Aws_Secret_Key: " + "Ab1/" * 10,
    "xoxb-1234567890-abcdefghij",
    "https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXXXXXXXXXX",
    "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----",
    "MY_API_KEY = 'Zx9Qw8Er7Ty6Ui5Op4' and db_password: \"Qm8Zr2Xv9LpT4wKd\"",
    'TOKEN=> "aB3dE5gH7jK9mN1pQ" tokentoken_secret = "Zx9Qw8Er7Ty6Ui5Op4"',
    "\u017fecret = 'Zx9Qw8Er7Ty6Ui5Op4' \u00dftoken = 'Zx9Qw8Er7Ty6Ui5Op4'",
    "max_tokens: 100, estimated_tokens = 'aaaaaaaaaaaaaaaaaaaa'",
]


@pytest.mark.parametrize("text", _SAMPLES)
def test_the_needles_skip_nothing_a_full_scan_finds(text: str) -> None:
    """The prefilter and the keyword-anchored generic scan find exactly what scanning the
    whole text with every regex (the generic one with its original name prefix) finds."""
    import dataclasses
    import re

    from karma.text.redact import PATTERNS, matches

    original = (
        r"(?i)\b[\w.\-]*(?:secret|token|passw(?:or)?d|pwd|api_?key|access_?key|"
        r"private_?key|credential|auth_?key)[\w.\-]*['\"]?\s*(?::=|=|:|=>)\s*"
        r"[bru]?['\"]([^'\"\s]{16,})['\"]"
    )
    full = tuple(
        dataclasses.replace(
            p,
            needles=(),
            anchored=False,
            regex=re.compile(original) if p.anchored else p.regex,
        )
        for p in PATTERNS
    )
    fast = [(p.rule, s, e) for p, s, e in matches(text)]
    assert fast == [(p.rule, s, e) for p, s, e in matches(text, full)]
