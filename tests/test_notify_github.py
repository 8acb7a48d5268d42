"""The GitHub Actions notifier against a loopback HTTP server standing in for api.github.com
(`GITHUB_API_URL`, which Actions sets): the comment lands on the issue or pull request the
workflow run came from, with the runner's token in the header and nowhere else.

Attacks: an API URL that would carry the token off the machine in clear, an event file
whose number is not a number, a reason holding the token, a mention or a link, a server
that redirects elsewhere; none fails a build."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from karma.config import NotifyConfig
from karma.events import EventBus
from karma.notify import github_thread, notify_run_end, payload, post_comment
from karma.store import Store

TOKEN = "ghs_" + "T0k3nN0tR3al" * 3


@dataclass
class Api:
    """Records each request: (path, headers, body)."""

    statuses: list[int] = field(default_factory=list)
    seen: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    redirect: str = ""

    def start(self) -> str:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                api.seen.append((self.path, dict(self.headers.items()), body))
                status = api.statuses.pop(0) if api.statuses else 201
                self.send_response(status)
                if api.redirect:
                    self.send_header("Location", api.redirect)
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def bodies(self) -> list[str]:
        return [json.loads(b)["body"] for _, _, b in self.seen]


@pytest.fixture
def apis() -> Iterator[list[Api]]:
    made: list[Api] = []
    yield made
    for api in made:
        api.server.shutdown()
        api.server.server_close()


def _event(tmp_path: Path, event: object) -> str:
    path = tmp_path / "event.json"
    path.write_text(json.dumps(event))
    return str(path)


def _env(tmp_path: Path, api_url: str, event: object = None, **extra: str) -> dict[str, str]:
    issue = {"issue": {"number": 7, "title": "@everyone", "body": "x"}}
    return {
        "GITHUB_ACTIONS": "true",
        "GITHUB_API_URL": api_url,
        "GITHUB_REPOSITORY": "octo/widgets",
        "GITHUB_TOKEN": TOKEN,
        "GITHUB_EVENT_PATH": _event(tmp_path, issue if event is None else event),
        **extra,
    }


RUN = {"id": "r1", "status": "needs_approval", "reason": "a change to a critical path",
       "branch": "karma/r1", "head_commit": "abc", "report_path": "/tmp/r1.html"}  # fmt: skip
WAITS = {"id": 1, "kind": "approval", "since": "2026-12-03T10:00:00Z", "commit": "abc",
         "paths": [".github/workflows/ci.yml"], "gates": ["approval"], "diff_stat": ""}  # fmt: skip


def test_the_thread_comes_from_the_runner_and_only_its_number_from_the_event(
    tmp_path: Path,
) -> None:
    thread, why = github_thread(_env(tmp_path, "https://api.github.com"))
    assert thread is not None and why == ""
    assert (thread.repository, thread.number, thread.api_url) == (
        "octo/widgets", 7, "https://api.github.com"
    )  # fmt: skip
    assert TOKEN not in repr(thread)
    pr = github_thread(
        _env(tmp_path, "https://ghe.example/api/v3", {"pull_request": {"number": 9}})
    )
    assert pr[0] is not None and pr[0].number == 9
    # Not in Actions, a schedule (no thread), no token: no comment, and says why when odd.
    assert github_thread({}) == (None, "")
    assert github_thread(_env(tmp_path, "https://api.github.com", {"schedule": "0 3 * * *"})) == (
        None, ""
    )  # fmt: skip
    thread, why = github_thread({**_env(tmp_path, "https://api.github.com"), "GITHUB_TOKEN": ""})
    assert thread is None and "GITHUB_TOKEN" in why


@pytest.mark.parametrize(
    "api_url",
    ["http://api.evil.example", "ftp://127.0.0.1", "https://u:p@api.github.com", "file:///etc"],
)
def test_the_token_never_leaves_in_clear_or_to_an_odd_url(tmp_path: Path, api_url: str) -> None:
    thread, why = github_thread(_env(tmp_path, api_url))
    assert thread is None and "GITHUB_API_URL" in why and TOKEN not in why


@pytest.mark.parametrize(
    "event",
    [
        {"issue": {"number": "7/../../../user/repos"}},
        {"issue": {"number": True}},
        {"issue": {"number": -1}},
        {"issue": {"number": 2**40}},
        {"pull_request": "7"},
        ["issue", 7],
    ],
)
def test_a_thread_number_that_is_not_a_number_is_refused(tmp_path: Path, event: object) -> None:
    assert github_thread(_env(tmp_path, "https://api.github.com", event))[0] is None


def test_a_broken_event_file_means_no_comment(tmp_path: Path) -> None:
    env = _env(tmp_path, "https://api.github.com")
    Path(env["GITHUB_EVENT_PATH"]).write_bytes(b"\xff{not json")
    assert github_thread(env)[0] is None
    assert github_thread({**env, "GITHUB_EVENT_PATH": str(tmp_path / "gone.json")})[0] is None


def test_the_comment_goes_to_the_thread_with_the_token_only_in_the_header(
    tmp_path: Path, apis: list[Api]
) -> None:
    apis.append(api := Api(statuses=[502]))
    thread, _ = github_thread(_env(tmp_path, api.start()))
    assert thread is not None
    loud = {**RUN, "reason": f"@octo/admins see <img src=x> [click](https://evil) {TOKEN}"}
    escalated = {"id": 2, "kind": "escalation", "since": "t", "task": "csv_export",
                 "reason": "4 attempts failed", "attempts": 4}  # fmt: skip
    p = payload(loud, [WAITS, escalated], ["karma approve r1", "karma reject r1"])
    waits: list[float] = []
    got = post_comment(NotifyConfig(retries=1), thread, p, sleep=waits.append)
    assert got.ok and got.tries == 2 and waits == [0.5]  # retried after the 502
    path, headers, raw = api.seen[-1]
    assert path == "/repos/octo/widgets/issues/7/comments"
    assert headers["Authorization"] == f"Bearer {TOKEN}"
    assert headers["Accept"] == "application/vnd.github+json"
    assert TOKEN not in raw.decode()
    body = api.bodies()[-1]
    assert "` r1 `" in body and "needs_approval" in body
    assert ".github/workflows/ci.yml" in body and "/karma approve" in body
    assert "/karma answer csv" in body and "karma approve r1" in body
    # Model or issue text cannot mention, link or inject HTML.
    assert "@octo" not in body and "<img" not in body and "](https://evil)" not in body


def test_a_redirect_is_not_followed_with_the_token(tmp_path: Path, apis: list[Api]) -> None:
    apis.append(elsewhere := Api())
    target = elsewhere.start()
    apis.append(api := Api(statuses=[307], redirect=target + "/steal"))
    thread, _ = github_thread(_env(tmp_path, api.start()))
    assert thread is not None
    got = post_comment(NotifyConfig(retries=0), thread, payload(RUN, [], []))
    assert not got.ok and elsewhere.seen == []


def _waiting_run(tmp_path: Path) -> Store:
    store = Store(tmp_path / "k.db")
    store.create_run("r1", "the request", tmp_path, status="needs_approval",
                     reason=f"the diff quotes {TOKEN}")  # fmt: skip
    store.add_pending(
        "r1", "approval", {"commit": "abc", "paths": ["a.yml"], "gates": ["approval"]}
    )
    return store


def test_a_run_end_is_commented_and_the_record_holds_no_token(
    tmp_path: Path, apis: list[Api]
) -> None:
    apis.append(api := Api())
    store = _waiting_run(tmp_path)
    bus = EventBus()
    bus.subscribe(store.record_event)
    notify_run_end(NotifyConfig(), store, bus, "r1", _env(tmp_path, api.start()))
    [body] = api.bodies()
    assert "a.yml" in body and TOKEN not in body
    [event] = [e for e in store.events("r1") if e.kind == "notified"]
    assert json.loads(event.data_json)["channel"] == "github"
    store.close()
    for f in tmp_path.glob("k.db*"):
        assert TOKEN.encode() not in f.read_bytes()


def test_a_failing_or_disabled_comment_is_logged_and_never_raises(
    tmp_path: Path, apis: list[Api]
) -> None:
    apis.append(api := Api(statuses=[403]))
    url = api.start()
    store = _waiting_run(tmp_path)
    bus = EventBus()
    bus.subscribe(store.record_event)
    notify_run_end(NotifyConfig(retries=3), store, bus, "r1", _env(tmp_path, url))
    assert len(api.seen) == 1  # a 403 is not retried
    logs = [json.loads(e.data_json).get("message", "") for e in store.events("r1")]
    assert any("the GitHub comment failed" in m and "403" in m for m in logs)
    # A closed port: logged too.
    env = _env(tmp_path, "http://127.0.0.1:9")
    notify_run_end(NotifyConfig(retries=0, timeout_s=1), store, bus, "r1", env)
    # Turned off: nothing is sent.
    off = NotifyConfig(github_comment=False)
    notify_run_end(off, store, bus, "r1", _env(tmp_path, url))
    assert len(api.seen) == 1
    store.close()


def test_the_actions_build_comments_its_end(
    tmp_path: Path, apis: list[Api], git_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`karma ci action` (mode build) tells the issue too, after its summary and outputs."""
    from karma.action import ActionInputs, run_build_action
    from karma.config import KarmaConfig

    apis.append(api := Api())

    class Result:
        run_id, reason, exit_code = "r9", "", 1

        def to_json(self) -> dict[str, Any]:
            return {"run_id": "r9", "status": "needs_approval", "gates": [], "cost_usd": 0.0}

    def build(request: str, *, store: Store, repo: Path, **_: Any) -> Result:
        store.create_run("r9", request, repo, status="needs_approval")
        store.add_pending("r9", "approval", {"commit": "c", "paths": ["w.yml"], "gates": []})
        return Result()

    env = _env(tmp_path, api.start(), GITHUB_OUTPUT=str(tmp_path / "out"))
    config = KarmaConfig.model_validate({"store": {"db": str(tmp_path / "k.db")}})
    code, _ = run_build_action(ActionInputs(spec="add w.yml"), repo=git_repo, environ=env,
                               config=config, build_fn=build)  # fmt: skip
    assert code == 1
    [body] = api.bodies()
    assert "` r9 `" in body and "w.yml" in body and TOKEN not in body
    assert api.seen[0][0] == "/repos/octo/widgets/issues/7/comments"
