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
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from karma.config import NotifyConfig
from karma.events import EventBus
from karma.store import Store
from karma.text.redact import redact, redact_value
from karma.waiting import commands, summary

Payload = dict[str, Any]


@dataclass(frozen=True)
class Delivery:
    ok: bool
    tries: int
    detail: str = ""


def payload(run: dict[str, Any], pending: list[dict[str, Any]], commands: list[str]) -> Payload:
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
    detail = ""
    for attempt in range(config.retries + 1):
        if attempt:
            sleep(0.5 * 2 ** (attempt - 1))
        request = urllib.request.Request(  # noqa: S310 (http(s) only, checked above)
            url, data=body, method="POST",
            headers={"Content-Type": content_type, "User-Agent": "karma-notify"},
        )  # fmt: skip
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


def notify_run_end(config: NotifyConfig, store: Store, bus: EventBus, run_id: str) -> None:
    """Tell the webhook how `run_id` ended; the outcome is an event, never an error."""
    if not config.webhook_url:
        return
    run = store.run(run_id)
    if run is None:
        return
    waiting = store.pending(run_id, open_only=True)
    p = payload(run, [summary(r) for r in waiting], commands(run_id, waiting))
    delivery = send(config, p)
    if delivery is None:
        return
    if delivery.ok:
        bus.emit("notified", run_id, tries=delivery.tries, format=config.format)
    else:
        bus.emit("log", run_id, message=f"notify: the webhook failed after "
                 f"{delivery.tries} tr(ies): {delivery.detail}; the build goes on")  # fmt: skip
