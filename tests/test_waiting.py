"""What an approval covers, on real git: exactly the approved paths with the approved
content; any other critical path, or a later change to an approved one, needs a new one.
And the notifier on a real loopback socket: retries, formats, no redirects, no secrets."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from karma.config import NotifyConfig
from karma.notify import payload, send
from karma.testing.repos import git, init_repo
from karma.waiting import Approval, approved
from karma.workspace import Workspace


def _commit(repo: Path, files: dict[str, str]) -> str:
    for path, text in files.items():
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "change")
    return git(repo, "rev-parse", "HEAD")


def _asking(*paths: str, review: bool = False) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = [
        {"name": "approval", "needs_approval": True, "findings": [{"path": p} for p in paths]}
    ]
    if review:
        rows.append({"name": "review", "needs_approval": True, "findings": []})
    return rows


def test_an_approval_covers_exactly_its_paths_and_content(tmp_path: Path) -> None:
    repo = init_repo(tmp_path / "r")
    ws = Workspace(repo)
    c1 = _commit(repo, {".github/workflows/ci.yml": "on: push\n"})
    ok = Approval(c1, (".github/workflows/ci.yml",), ("approval",))
    assert approved(ws, (ok,), c1, _asking(".github/workflows/ci.yml"))
    # A later commit that leaves the approved file as it was: still covered.
    c2 = _commit(repo, {"src.py": "x = 1\n"})
    assert approved(ws, (ok,), c2, _asking(".github/workflows/ci.yml"))
    # Another critical path: not covered, by this approval nor by one of another run.
    c3 = _commit(repo, {".github/workflows/release.yml": "on: tag\n"})
    both = _asking(".github/workflows/ci.yml", ".github/workflows/release.yml")
    assert not approved(ws, (ok,), c3, both)
    other = Approval(c3, (".github/workflows/release.yml",), ("approval",))
    assert not approved(ws, (ok, other), c3, both)  # each approval must cover all alone
    # The approved path changed again after the approval: a new approval is needed.
    c4 = _commit(repo, {".github/workflows/ci.yml": "on: push\njobs: {evil: 1}\n"})
    assert not approved(ws, (ok,), c4, _asking(".github/workflows/ci.yml"))
    # A mode change (now a symlink) is a change too.
    (repo / ".github/workflows/ci.yml").unlink()
    (repo / ".github/workflows/ci.yml").symlink_to("/etc/passwd")
    c5 = _commit(repo, {})
    assert not approved(ws, (ok,), c5, _asking(".github/workflows/ci.yml"))
    # A partial review is covered at the approved commit only; nothing asks: no approval.
    assert approved(ws, (Approval(c1, (), ("review",)),), c1, _asking(review=True)[1:])
    assert not approved(ws, (Approval(c1, (), ("review",)),), c2, _asking(review=True)[1:])
    assert not approved(ws, (ok,), c1, [])


class _Hook:
    def __init__(self, statuses: list[int], redirect: str = "") -> None:
        self.seen: list[tuple[str, bytes]] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                hook.seen.append((self.headers.get("Content-Type", ""), body))
                status = statuses.pop(0) if statuses else 200
                self.send_response(status)
                if redirect:
                    self.send_header("Location", redirect)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def hooks() -> Iterator[list[_Hook]]:
    made: list[_Hook] = []
    yield made
    for h in made:
        h.server.shutdown()
        h.server.server_close()


RUN = {"id": "r1", "status": "needs_approval", "reason": "token ghp_" + "x" * 36,
       "branch": "karma/r1", "head_commit": "abc", "report_path": "/tmp/r1.html"}  # fmt: skip


def test_the_notifier_retries_a_5xx_and_gives_up_on_a_4xx(hooks: list[_Hook]) -> None:
    hooks.append(_Hook([500, 503]))
    waits: list[float] = []
    p = payload(RUN, [{"kind": "approval", "since": "t", "paths": ["a"]}], ["karma approve r1"])
    got = send(NotifyConfig(webhook_url=hooks[0].url, retries=2), p, sleep=waits.append)
    assert got is not None and got.ok and got.tries == 3 and waits == [0.5, 1.0]
    sent = json.loads(hooks[0].seen[-1][1])
    assert sent["run"] == "r1" and sent["commands"] == ["karma approve r1"]
    assert "ghp_" + "x" * 36 not in hooks[0].seen[-1][1].decode()

    hooks.append(_Hook([404]))
    got = send(NotifyConfig(webhook_url=hooks[1].url, retries=3), p, sleep=waits.append)
    assert got is not None and not got.ok and got.tries == 1 and "404" in got.detail

    loud = payload({**RUN, "reason": "<!channel> <https://evil|click>"}, [], [])
    hooks.append(_Hook([]))
    send(NotifyConfig(webhook_url=hooks[-1].url, format="slack"), loud)
    assert "<!channel>" not in json.loads(hooks[-1].seen[0][1])["text"]

    for fmt, kind in (("slack", "application/json"), ("plain", "text/plain")):
        hooks.append(_Hook([]))
        send(NotifyConfig(webhook_url=hooks[-1].url, format=fmt), p)  # type: ignore[arg-type]
        content_type, body = hooks[-1].seen[0]
        assert content_type.startswith(kind) and b"karma approve r1" in body
        assert b"ghp_" + b"x" * 36 not in body


def test_the_notifier_follows_no_redirect_and_only_http(hooks: list[_Hook]) -> None:
    hooks.append(_Hook([]))
    hooks.append(_Hook([302], redirect=hooks[0].url))
    p = payload(RUN, [], [])
    got = send(NotifyConfig(webhook_url=hooks[1].url, retries=0), p)
    assert got is not None and not got.ok and hooks[0].seen == []
    got = send(NotifyConfig(webhook_url="file:///etc/passwd"), p)
    assert got is not None and not got.ok and "http(s)" in got.detail
    assert send(NotifyConfig(), p) is None


def test_a_run_waiting_past_the_timeout_is_rejected_only_when_configured(
    tmp_path: Path,
) -> None:
    from datetime import timedelta

    from karma.config import ApprovalConfig
    from karma.events import iso, utcnow
    from karma.store import Store
    from karma.waiting import expire_waiting

    store = Store(tmp_path / "k.db")
    for run_id, hours in (("old", 3.0), ("new", 0.5)):
        store.create_run(run_id, "x", tmp_path, status="needs_approval")
        pid = store.add_pending(run_id, "approval", {"commit": "c", "paths": [], "gates": []})
        since = iso(utcnow() - timedelta(hours=hours))
        store.query("UPDATE pending SET since = ? WHERE id = ?", (since, pid))
    store.create_run("done", "x", tmp_path, status="succeeded")
    assert expire_waiting(store, ApprovalConfig(timeout_h=2), tmp_path) == []  # keep_waiting
    assert expire_waiting(store, ApprovalConfig(), tmp_path) == []
    rejecting = ApprovalConfig(timeout_h=2, on_timeout="reject")
    assert expire_waiting(store, rejecting, tmp_path / "other") == []  # another repository
    assert expire_waiting(store, rejecting, tmp_path) == ["old"]
    old, new = store.run("old"), store.run("new")
    assert old is not None and old.status == "failed" and "timeout_h" in old.reason
    assert new is not None and new.status == "needs_approval"
    [decided] = store.pending("old")
    assert (decided.decision, decided.decided_by) == ("rejected", "karma")
    assert expire_waiting(store, rejecting, tmp_path) == []
