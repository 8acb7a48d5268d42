"""Humans in the loop, end to end: the real anthropic SDK over HTTP to the loopback model
server, real Docker sandboxes, real git, a real webhook receiver on loopback.

A change to `.github/workflows/` ends `needs_approval` with a `pending` record; `karma
approve` continues it to `succeeded` (the approval in the record and in `karma show`),
`karma reject` ends it; an escalated task answered with a hint succeeds on its next
attempt; every run end is posted to the webhook (retried after a 500), and a webhook on
a closed port does not fail the build. Attacks: one run's approval never covers another
run's paths; a note or hint holding a key or terminal commands is stored redacted and
printed inert; a repository cannot point `notify.webhook_url` anywhere.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from karma.cli import main
from karma.store import Store
from karma.testing.demo import REQUEST, break_attempts, conversation, demo_config, demo_script
from karma.testing.repos import git
from tests.engine.test_flaky import FLAKY_TEST, LEARNED  # a test flaky in a sandbox

pytestmark = pytest.mark.docker

KEY = "test-key-not-real-HU42"
NOTE_KEY = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
Cli = Callable[..., tuple[int, str, str]]


class Receiver:
    """A webhook on loopback that fails its first `fail` requests with a 500."""

    def __init__(self, fail: int = 0) -> None:
        self.bodies: list[bytes] = []
        self.statuses: list[int] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status = 500 if len(outer.statuses) < fail else 200
                outer.statuses.append(status)
                if status == 200:
                    outer.bodies.append(body)
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def payloads(self) -> list[dict[str, Any]]:
        return [json.loads(b) for b in self.bodies]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    hook = Receiver(fail=1)
    yield hook
    hook.close()


def _closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"


@pytest.fixture
def cli(
    demo_repo: Path,
    tmp_path: Path,
    docker_engine: str,
    osv_url: str,
    model_server: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Cli:
    """`karma` on the demo repo with the user's config (`extra` appended); the script is
    set on the model server by `script=`."""
    from karma.models.script import parse_script

    user = tmp_path / "user-config.toml"
    monkeypatch.setenv("KARMA_CONFIG", str(user))
    monkeypatch.setenv("ANTHROPIC_BASE_URL", model_server.anthropic_base_url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    monkeypatch.setenv("KARMA_BASE_IMAGE", docker_engine)
    monkeypatch.setenv("KARMA_OSV_URL", osv_url)

    def run(
        *args: str, script: dict[str, Any] | None = None, extra: str = ""
    ) -> tuple[int, str, str]:
        if script is not None:
            model_server.set_script(parse_script(script))
            user.write_text(demo_config().read_text().replace("scripted:", "anthropic:") + extra)
        capsys.readouterr()
        code = main(["-C", str(demo_repo), *args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def _touching(*paths: str) -> dict[str, Any]:
    """The demo script whose docs task also writes these (critical) files."""
    script = demo_script()
    writes = [
        {"name": "write_file", "arguments": {"path": p, "content": f"# {p}\non: push\n"}}
        for p in paths
    ]
    conversation(script, "docs")["replies"][1:1] = [{"tool_calls": writes}]
    return script


def _store(repo: Path) -> Store:
    return Store(repo / ".karma" / "karma.db")


def test_approve_continues_the_run_and_covers_only_its_own_paths(
    cli: Cli, demo_repo: Path, receiver: Receiver
) -> None:
    notify = f'[notify]\nwebhook_url = "{receiver.url}"\n'
    code, out, err = cli(
        "build", "--json", REQUEST, script=_touching(".github/workflows/ci.yml"), extra=notify
    )
    a = json.loads(out)
    assert (code, a["status"]) == (1, "needs_approval"), err[-3000:]
    store = _store(demo_repo)
    [pending] = store.pending(a["run_id"], open_only=True)
    detail = json.loads(pending.detail_json)
    assert pending.kind == "approval" and detail["paths"] == [".github/workflows/ci.yml"]
    assert detail["commit"] == a["head_commit"] and "ci.yml" in detail["diff_stat"]
    code, out, _ = cli("show", a["run_id"])
    assert code == 0 and "waiting since" in out and ".github/workflows/ci.yml" in out

    # The webhook got the run end, after one 500: run, status, what waits, the commands.
    assert receiver.statuses[:2] == [500, 200]
    [first] = receiver.payloads()
    assert first["run"] == a["run_id"] and first["status"] == "needs_approval"
    assert first["pending"][0]["paths"] == [".github/workflows/ci.yml"]
    assert f"karma approve {a['run_id']}" in first["commands"]
    assert KEY not in json.dumps(first)

    # A second run waits for another critical path.
    code, out, err = cli(
        "build", "--json", REQUEST, script=_touching(".github/workflows/release.yml"), extra=notify
    )
    b = json.loads(out)
    assert b["status"] == "needs_approval", err[-3000:]

    code, out, err = cli("approve", a["run_id"], "--json", "--note", "reviewed the workflow")
    result = json.loads(out)
    assert (code, result["status"]) == (0, "succeeded"), err[-3000:]
    assert result["head_commit"] == a["head_commit"]  # the approved change, gated again
    [decided] = store.pending(a["run_id"])
    assert (decided.decision, decided.decided_by) == ("approved", "Dev")
    assert decided.note == "reviewed the workflow" and decided.decided_at
    kinds = [e.kind for e in store.events(a["run_id"])]
    assert "human_decided" in kinds and kinds.count("run_finished") == 2
    assert store.gate_results(a["run_id"])[-1].ts > decided.decided_at
    code, out, _ = cli("show", a["run_id"])
    assert "approved by Dev" in out and "reviewed the workflow" in out
    report = Path(result["report"]).read_text()
    assert "Humans in the loop" in report and "approved by Dev" in report
    assert receiver.payloads()[-1]["status"] == "succeeded"

    # A second approval, an approval of a finished run, a wrong id: one line, exit 2.
    code, _, err = cli("approve", a["run_id"])
    assert code == 2 and "succeeded: nothing waits" in err
    assert cli("approve", "no-such-run")[0] == 2

    # Run A's approval covers nothing of run B: B still waits, B's record is untouched.
    assert store.pending(b["run_id"], open_only=True)
    code, out, err = cli("resume", b["run_id"], "--json")
    assert json.loads(out)["status"] == "needs_approval", err[-3000:]
    [still] = store.pending(b["run_id"], open_only=True)
    assert json.loads(still.detail_json)["paths"] == [".github/workflows/release.yml"]


def test_reject_ends_the_run_and_untrusted_notes_are_inert(
    cli: Cli, demo_repo: Path, tmp_path: Path
) -> None:
    with_attacker = Receiver()
    try:
        # The repository's own config points the webhook at an attacker: ignored.
        (demo_repo / "karma.toml").write_text(f'[notify]\nwebhook_url = "{with_attacker.url}"\n')
        git(demo_repo, "add", "karma.toml")
        git(demo_repo, "commit", "-qm", "a contributor's karma.toml")
        closed = f'[notify]\nwebhook_url = "{_closed_port()}"\ntimeout_s = 1\nretries = 1\n'
        code, out, err = cli(
            "build", "--json", REQUEST, script=_touching(".github/workflows/ci.yml"), extra=closed
        )
        run = json.loads(out)
        # The webhook on a closed port is logged; the build ends as it would have.
        assert (code, run["status"]) == (1, "needs_approval"), err[-3000:]
        assert "notify.webhook_url is ignored" in err
        assert with_attacker.bodies == [] and with_attacker.statuses == []
        store = _store(demo_repo)
        logs = [json.loads(e.data_json).get("message", "") for e in store.events(run["run_id"])]
        assert any("notify: the webhook failed" in m for m in logs)

        note = f"no: \x1b[2J::error::pwned\n##[group]x {NOTE_KEY}"
        code, out, err = cli("reject", run["run_id"], "--note", note, "--by", "::warning::Eve")
        assert code == 0, err
        row = store.run(run["run_id"])
        assert row is not None and row.status == "failed"
        assert row.reason.startswith("rejected by ::warning::Eve: no:")
        assert NOTE_KEY not in row.reason
        [decided] = store.pending(run["run_id"])
        assert decided.decision == "rejected" and NOTE_KEY not in decided.note
        assert "[REDACTED" in decided.note
        assert NOTE_KEY not in store.path.read_bytes().decode("latin-1")
        code, out, _ = cli("show", run["run_id"])
        assert "rejected by" in out and "\x1b" not in out and NOTE_KEY not in out
        for line in out.splitlines():
            assert not line.lstrip().startswith(("::", "##["))
        code, out, _ = cli("report", run["run_id"], "--format", "md")
        assert "rejected by" in out and "\x1b" not in out and NOTE_KEY not in out
        # A rejected run waits for nothing: approving it is refused.
        code, _, err = cli("approve", run["run_id"])
        assert code == 2 and "nothing waits" in err
        assert cli("reject", run["run_id"])[0] == 2
    finally:
        with_attacker.close()


def test_an_escalated_task_answered_with_a_hint_succeeds_on_its_next_attempt(
    cli: Cli, demo_repo: Path
) -> None:
    script = break_attempts(demo_script(), attempts=(1, 2, 3, 4))
    hint = "the columns are sku, name, quantity"
    fixed = dict(conversation(script, "csv_export"), name="csv_export-hinted")
    fixed["match"] = {"user": ["Task csv_export:", f"A human says: {hint}"]}
    script["conversations"].insert(0, fixed)
    code, out, err = cli(
        "build", "--json", REQUEST, script=script, extra="[build]\nmax_retries = 1\n"
    )
    run = json.loads(out)
    assert run["status"] == "escalated", err[-3000:]
    store = _store(demo_repo)
    [pending] = store.pending(run["run_id"], open_only=True)
    assert (pending.kind, pending.task_id) == ("escalation", "csv_export")
    assert json.loads(pending.detail_json)["attempts"]
    code, out, _ = cli("show", run["run_id"])
    assert "waiting since" in out and "an answer for csv_export" in out
    failed_attempts = len(store.attempts(run["run_id"], "csv_export"))

    assert cli("answer", run["run_id"], "--task", "cli", hint)[0] == 2  # not escalated
    code, out, err = cli("answer", run["run_id"], "--task", "csv_export", hint, "--json")
    result = json.loads(out)
    assert (code, result["status"]) == (0, "succeeded"), err[-3000:]
    attempts = store.attempts(run["run_id"], "csv_export")
    assert len(attempts) == failed_attempts + 1 and attempts[-1].status == "succeeded"
    # The human remedy is learned like the others.
    [outcome] = [o for o in store.outcomes() if o["remediation"] == "human_hint"]
    assert outcome["outcome"] == "resolved" and outcome["task_id"] == "csv_export"
    assert any(hint in (f["hint"] or "") for f in store.failures())
    [decided] = store.pending(run["run_id"])
    assert (decided.decision, decided.note) == ("answered", hint)


def test_an_elevated_remedy_proceeds_a_human_is_told_and_may_override(
    cli: Cli, demo_repo: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    learned = demo_repo / ".karma" / "recipes" / "learned"
    learned.mkdir(parents=True)
    (learned / "flaky.yaml").write_text(LEARNED.replace("REMEDY", "quarantine_flaky_test"))
    monkeypatch.setenv("KARMA_HEAL__ELEVATED__MIN_CONFIDENCE", "0.5")
    script = demo_script()
    conversation(script, "csv_export")["replies"][0]["tool_calls"].append(
        {"name": "write_file", "arguments": {"path": "tests/test_flaky.py", "content": FLAKY_TEST}}
    )
    notify = f'[notify]\nwebhook_url = "{receiver.url}"\n'
    code, out, err = cli("build", "--json", "--no-gates", REQUEST, script=script, extra=notify)
    run = json.loads(out)
    # It proceeded: the run succeeded with the flaky test quarantined, and did not wait.
    assert (code, run["status"]) == (0, "succeeded"), err[-3000:]
    store = _store(demo_repo)
    [notice] = store.pending(run["run_id"], open_only=True)
    assert (notice.kind, notice.task_id) == ("notice", "csv_export")
    assert json.loads(notice.detail_json)["remediation"] == "quarantine_flaky_test"
    # A human was told, with the command that overrides it.
    told = receiver.payloads()[-1]
    assert told["status"] == "succeeded" and told["pending"][0]["kind"] == "notice"
    assert f"karma reject {run['run_id']} --task csv_export" in told["commands"][0]
    code, out, _ = cli("show", run["run_id"])
    assert "told at" in out and "quarantine_flaky_test" in out
    # Overridden inside the window: the run ends failed, the override in the record.
    code, _, err = cli("reject", run["run_id"], "--task", "csv_export", "--note", "fix it")
    assert code == 0, err
    row = store.run(run["run_id"])
    assert row is not None and row.status == "failed"
    assert "overrides csv_export's quarantine_flaky_test" in row.reason
    code, out, _ = cli("report", run["run_id"], "--format", "md")
    assert "rejected by Dev" in out and "quarantine\\_flaky\\_test" in out  # Markdown-escaped
    assert receiver.payloads()[-1]["status"] == "failed"


def test_a_comment_continues_the_run_on_another_runner(
    cli: Cli,
    demo_repo: Path,
    tmp_path: Path,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The on-issue workflow's path, on one machine: the run waits on "runner A", leaves as
    a redacted export and a git bundle, and a member's `/karma approve` comment continues
    it on "runner B" (a fresh clone, no store) in GitHub Actions mode, where its end is
    commented on the issue through a loopback stand-in for the API."""
    code, out, err = cli("build", "--json", REQUEST, script=_touching(".github/workflows/ci.yml"))
    run = json.loads(out)
    assert run["status"] == "needs_approval", err[-3000:]
    record, bundle = tmp_path / "karma-run.json", tmp_path / "karma-run.bundle"
    assert cli("runs", "export", run["run_id"], "-o", str(record))[0] == 0
    git(demo_repo, "bundle", "create", str(bundle), f"refs/heads/karma/{run['run_id']}")

    other = tmp_path / "runner-b"
    git(tmp_path, "clone", "-q", str(demo_repo), str(other))
    git(other, "config", "user.name", "KARMA")
    git(other, "config", "user.email", "karma@example.invalid")
    git(other, "fetch", "-q", str(bundle), "+refs/heads/karma/*:refs/heads/karma/*")
    assert not (other / ".karma" / "karma.db").exists()

    def on_b(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(["-C", str(other), *args])
        got = capsys.readouterr()
        return code, got.out, got.err

    code, out, err = on_b("runs", "import", str(record))
    assert (code, out.strip()) == (0, run["run_id"]), err
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"issue": {"number": 7}, "comment": {"body": "ignored"}}))
    outputs = tmp_path / "github-output"
    token = "ghs_" + "R7nn3rT0k3n" * 4
    for name, value in {
        "GITHUB_ACTIONS": "true",
        "GITHUB_API_URL": receiver.url.rsplit("/", 1)[0],
        "GITHUB_REPOSITORY": "octo/widgets",
        "GITHUB_TOKEN": token,
        "GITHUB_EVENT_PATH": str(event),
        "GITHUB_OUTPUT": str(outputs),
        "KARMA_COMMENT_BODY": "/karma approve the workflow change is fine",
        "KARMA_COMMENT_AUTHOR": "octocat",
        "KARMA_COMMENT_ASSOCIATION": "MEMBER",
    }.items():
        monkeypatch.setenv(name, value)
    code, _, err = on_b("ci", "comment", "--run", run["run_id"])
    assert code == 0, err[-3000:]
    store = Store(other / ".karma" / "karma.db")
    row = store.run(run["run_id"])
    assert row is not None and row.status == "succeeded"
    [approved] = [p for p in store.pending(run["run_id"]) if p.decision == "approved"]
    assert approved.decided_by == "octocat (GitHub)"
    assert approved.note == "the workflow change is fine"
    assert "status=succeeded" in outputs.read_text()
    # The issue was told how the run ended (after a 500, retried), and never the token.
    assert receiver.statuses == [500, 200]
    comment = json.loads(receiver.bodies[-1])["body"]
    assert "succeeded" in comment and run["run_id"] in comment and token not in comment
    for f in (other / ".karma").glob("karma.db*"):
        assert token.encode() not in f.read_bytes()
