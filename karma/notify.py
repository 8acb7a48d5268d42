"""Telling a human a run ended, and what it waits for: the `[notify]` webhook.

Called once per run end by the command that ran it (`karma build`, `resume`, `approve`,
`answer`, `reject`), after the run record and the report are written: a notification is
about a finished fact, never part of the work. The payload is data — the run, its
status and reason, what is pending, the report's path and the commands that answer —
redacted as a whole before it is sent (no credential, no host secret value). A POST
that fails with a 5xx, a 429, a timeout or a refused connection is tried again with a
backoff; a notifier that still fails is reported to the caller, which logs it: it never
fails the build. Only `http(s)` URLs, no redirects, from trusted config only
(`notify.webhook_url` is trusted-only).

In GitHub Actions the run end is also a comment on the issue or pull request the
workflow run came from (`notify.github_comment`), posted through the REST API with the
runner's token (`GITHUB_TOKEN` or `GH_TOKEN`). The token goes in the `Authorization`
header of that one request and nowhere else: not into the comment, an event or the
record; it is sent only over https, or over http to a loopback API (a test's stand-in).
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from karma.config import NotifyConfig
from karma.events import EventBus
from karma.ids import RunId
from karma.store import Store
from karma.text.redact import redact, redact_value
from karma.waiting import commands, describe, summary

Payload = dict[str, Any]


@dataclass(frozen=True)
class Delivery:
    ok: bool
    tries: int
    detail: str = ""


def payload(run: Mapping[str, Any], pending: list[dict[str, Any]], commands: list[str]) -> Payload:
    """The JSON payload of a run end (README, "Notifications")."""
    body = {
        "run": run["id"],
        "status": run["status"],
        "reason": run.get("reason") or "",
        "branch": run.get("branch"),
        "head_commit": run.get("head_commit"),
        "report": run.get("report_path"),
        "pending": pending,
        "commands": commands,
    }
    clean: Payload = redact_value(body)
    return clean


def _text(p: Payload) -> str:
    lines = [f"KARMA run {p['run']}: {p['status']}"]
    if p["reason"]:
        lines.append(str(p["reason"])[:500])
    for item in p["pending"]:
        if item["kind"] == "notice":
            lines.append(f"told: {item.get('task')} went on with {item.get('remediation')} "
                         f"(override until {item.get('until') or '-'})")  # fmt: skip
            continue
        what = ", ".join(item.get("paths", [])) or item.get("reason", "")
        lines.append(f"waits for {item['kind']} since {item['since']}: {str(what)[:300]}")
    lines += [f"  {c}" for c in p["commands"]]
    if p["report"]:
        lines.append(f"report: {p['report']}")
    return "\n".join(lines)


def render(p: Payload, fmt: str) -> tuple[bytes, str]:
    """The request body and its content type for `notify.format`."""
    if fmt == "slack":  # Slack's own escapes: no <!channel> or link smuggled in by a reason
        text = _text(p).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        return json.dumps({"text": text}).encode(), "application/json"
    if fmt == "plain":
        return redact(_text(p)).encode(), "text/plain; charset=utf-8"
    return json.dumps(p, sort_keys=True).encode(), "application/json"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # the configured URL is the only place a payload goes


_OPENER = urllib.request.build_opener(_NoRedirect)


def send(config: NotifyConfig, p: Payload, *, sleep: Any = time.sleep) -> Delivery | None:
    """POST the payload to `notify.webhook_url`; None when none is configured."""
    url = config.webhook_url
    if not url:
        return None
    if urlsplit(url).scheme not in ("http", "https"):
        return Delivery(False, 0, f"notify.webhook_url must be http(s), not {url[:40]!r}")
    body, content_type = render(p, config.format)
    return _post(url, body, {"Content-Type": content_type}, config, sleep)


def _post(url: str, body: bytes, headers: dict[str, str], config: NotifyConfig,
          sleep: Callable[[float], object]) -> Delivery:  # fmt: skip
    """POST with the retries and timeout of `[notify]`; no redirect is followed."""
    detail = ""
    for attempt in range(config.retries + 1):
        if attempt:
            sleep(0.5 * 2 ** (attempt - 1))
        request = urllib.request.Request(  # noqa: S310 (http(s) only, checked by callers)
            url, data=body, method="POST", headers={"User-Agent": "karma-notify", **headers}
        )
        try:
            with _OPENER.open(request, timeout=config.timeout_s) as reply:
                reply.read(4096)
            return Delivery(True, attempt + 1)
        except urllib.error.HTTPError as exc:
            detail = f"HTTP {exc.code}"
            if exc.code < 500 and exc.code != 429:
                return Delivery(False, attempt + 1, detail)
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
            detail = str(getattr(exc, "reason", exc))[:200]
    return Delivery(False, config.retries + 1, detail)


# -- GitHub Actions: a comment on the issue or pull request ----------------------------------

_LOOPBACK = ("127.0.0.1", "localhost", "::1")
_REPOSITORY = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,38}/[A-Za-z0-9._-]{1,100}")
EVENT_FILE_LIMIT = 25 * 1024 * 1024


@dataclass(frozen=True)
class GitHubThread:
    """The issue or pull request a workflow run came from, and the API that reaches it."""

    api_url: str
    repository: str
    number: int
    token: str = field(repr=False)


def github_thread(environ: Mapping[str, str]) -> tuple[GitHubThread | None, str]:
    """Where a run end is commented in GitHub Actions; (None, why not) elsewhere.

    Trust: the runner's environment is trusted (set by Actions and the workflow's
    author): `GITHUB_ACTIONS`, `GITHUB_API_URL`, `GITHUB_REPOSITORY`, `GITHUB_TOKEN` or
    `GH_TOKEN`, `GITHUB_EVENT_PATH`. The event file is written by the runner but holds
    untrusted text (an issue's title and body, a comment): only the issue's or pull
    request's `number` is read from it, and it must be a positive integer. The token is
    sent only over https, or over http to a loopback host."""
    if environ.get("GITHUB_ACTIONS", "").lower() != "true":
        return None, ""
    token = environ.get("GITHUB_TOKEN") or environ.get("GH_TOKEN") or ""
    if not token.strip():
        return None, "no GITHUB_TOKEN or GH_TOKEN in the step's env"
    api = environ.get("GITHUB_API_URL") or "https://api.github.com"
    parts = urlsplit(api)
    if parts.scheme != "https" and not (parts.scheme == "http" and parts.hostname in _LOOPBACK):
        return None, f"GITHUB_API_URL must be https, not {api[:60]!r}: the token stays home"
    if parts.query or parts.fragment or parts.username or parts.password:
        return None, "GITHUB_API_URL must be a plain URL"
    repository = environ.get("GITHUB_REPOSITORY", "")
    if not _REPOSITORY.fullmatch(repository):
        return None, "GITHUB_REPOSITORY is not owner/name"
    number = _event_number(environ.get("GITHUB_EVENT_PATH", ""))
    if number is None:
        return None, ""  # a push, a schedule, a dispatch: no thread to comment on
    return GitHubThread(api.rstrip("/"), repository, number, token.strip()), ""


def _event_number(path: str) -> int | None:
    if not path:
        return None
    try:
        with open(path, "rb") as f:
            event = json.loads(f.read(EVENT_FILE_LIMIT + 1)[:EVENT_FILE_LIMIT])
    except (OSError, ValueError):
        return None
    if not isinstance(event, dict):
        return None
    for key in ("issue", "pull_request"):
        thread = event.get(key)
        if isinstance(thread, dict):
            number = thread.get("number")
            # bool is an int; a string such as "7/../../x" is refused, not parsed
            if type(number) is int and 0 < number < 2**31:
                return number
    return None


def comment_markdown(p: Payload) -> str:
    """A run end as a comment: every untrusted part inert (no mention, link or HTML)."""
    from karma.text.markdown import md_code, md_inline

    lines = [f"**KARMA** run {md_code(p['run'], 80)} ended {md_code(p['status'], 40)}."]
    if p["reason"]:
        lines += ["", f"> {md_inline(p['reason'], 800)}"]
    waits = [item for item in p["pending"] if item["kind"] != "notice"]
    told = [item for item in p["pending"] if item["kind"] == "notice"]
    if waits:
        lines += ["", "Waiting for a human:"]
        lines += [f"- {md_inline(describe(item), 600)}" for item in waits]
    if told:
        lines += ["", "Told (the build went on with it):"]
        lines += [f"- {md_inline(describe(item), 600)}" for item in told]
    if p["pending"]:
        lines += ["", "Decide with a comment (owners, members and collaborators):"]
        if any(item["kind"] == "approval" for item in waits):
            lines += ["- `/karma approve [note]` or `/karma reject [note]`"]
        elif any(item.get("until") for item in told) and not waits:
            lines += ["- `/karma reject [why]` overrides it: the run ends failed"]
        for item in waits:
            if item["kind"] == "escalation" and item.get("task"):
                answer = f"/karma answer {item['task']} what to try"
                lines.append(f"- {md_code(answer, 200)}")
        lines += ["", "or where the run store is:"]
        lines += [f"- {md_code(c, 300)}" for c in p["commands"]]
    if p["report"]:
        lines += ["", f"Report: {md_code(p['report'], 300)}"]
    return "\n".join(lines) + "\n"


def post_comment(config: NotifyConfig, thread: GitHubThread, p: Payload, *,
                 sleep: Callable[[float], object] = time.sleep) -> Delivery:  # fmt: skip
    """Comment the run end on the thread, through the REST API, with the runner's token."""
    text = redact(comment_markdown(p)).replace(thread.token, "[REDACTED:env.GITHUB_TOKEN]")
    url = f"{thread.api_url}/repos/{thread.repository}/issues/{thread.number}/comments"
    headers = {
        "Content-Type": "application/json",
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": "2022-11-28",
        "Authorization": f"Bearer {thread.token}",
    }
    return _post(url, json.dumps({"body": text}).encode(), headers, config, sleep)


def notify_run_end(config: NotifyConfig, store: Store, bus: EventBus, run_id: RunId,
                   environ: Mapping[str, str] | None = None) -> None:  # fmt: skip
    """Tell the webhook (and, in GitHub Actions, the issue or pull request) how `run_id`
    ended; each outcome is an event, never an error."""
    env = os.environ if environ is None else environ
    thread, why_not = github_thread(env) if config.github_comment else (None, "")
    if why_not:
        bus.emit("log", run_id, message=f"notify: no GitHub comment: {why_not}")
    if not config.webhook_url and thread is None:
        return
    run = store.run(run_id)
    if run is None:
        return
    waiting = store.pending(run_id, open_only=True)
    p = payload(run.as_dict(), [summary(r) for r in waiting], commands(run_id, waiting))
    outcomes: list[tuple[str, Delivery | None]] = [("webhook", send(config, p))]
    if thread is not None:
        outcomes.append(("github", post_comment(config, thread, p)))
    for channel, delivery in outcomes:
        if delivery is None:
            continue
        if delivery.ok:
            fmt = config.format if channel == "webhook" else "markdown"
            bus.emit("notified", run_id, tries=delivery.tries, format=fmt, channel=channel)
        else:
            what = "the webhook" if channel == "webhook" else "the GitHub comment"
            bus.emit("log", run_id, message=f"notify: {what} failed after "
                     f"{delivery.tries} tr(ies): {delivery.detail}; the build goes on")  # fmt: skip
