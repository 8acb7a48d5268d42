"""From an HTTP failure (status, headers, body) to the `ProviderError` it means.

Both SDK backends describe what went wrong with the same few facts, and this table turns
them into KARMA's error tree: which failures are worth waiting for (429, 529, 5xx) and
which never are (a spend limit, a bad key). Messages are scrubbed of the key first: an
error line may end up in a log, a report or a CI annotation.
"""

from __future__ import annotations

import email.utils
import json
import re
import time
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

from karma.models.interface import (
    AuthFailed,
    BadRequest,
    ConnectionFailed,
    MalformedReply,
    Overloaded,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    ServerError,
    SpendLimitReached,
)

# A 429 (or 400/402) carrying one of these is about money, not load: retrying cannot help.
SPEND_MARKERS = (
    "spend limit",
    "spending limit",
    "credit balance",
    "quota",
    "insufficient_quota",
    "billing",
    "usage limit",
)

_KEYLIKE = re.compile(r"\b(sk-[A-Za-z0-9_\-]{4,}|sk_[A-Za-z0-9_\-]{4,})")


def redact(text: str, secret: str | None) -> str:
    """`text` without the key (nor anything shaped like one)."""
    if secret and len(secret) >= 4:
        text = text.replace(secret, "***")
    return _KEYLIKE.sub("sk-***", text)


def body_text(body: object) -> str:
    """The human part of an error body: `error.message` when there is one."""
    if isinstance(body, Mapping):
        error = body.get("error", body)
        if isinstance(error, Mapping):
            parts = [str(error.get(k)) for k in ("type", "code", "message") if error.get(k)]
            if parts:
                return ": ".join(parts)
        return json.dumps(body)[:500]
    if isinstance(body, bytes):
        return body.decode("utf-8", "replace")[:500]
    return str(body)[:500] if body is not None else ""


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds the server asked us to wait (`retry-after-ms`, `retry-after` seconds or date)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    if "retry-after-ms" in lowered:
        try:
            return max(0.0, float(lowered["retry-after-ms"]) / 1000)
        except ValueError:
            pass
    value = lowered.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def status_error(
    status: int,
    headers: Mapping[str, str],
    body: Any,
    *,
    provider: str,
    secret: str | None,
) -> ProviderError:
    """The typed error of an HTTP error reply."""
    detail = redact(body_text(body), secret)
    text = detail.lower()
    message = f"{provider}: HTTP {status}: {detail}" if detail else f"{provider}: HTTP {status}"
    wait = retry_after(headers)
    kind: type[ProviderError]
    tip: str | None = None
    if status == 402 or (status in (400, 429) and any(m in text for m in SPEND_MARKERS)):
        kind, tip = SpendLimitReached, f"raise the {provider} account's spend limit or credit"
    elif status == 429:
        kind = RateLimited
    elif status == 529 or (status >= 500 and "overloaded" in text):
        kind = Overloaded
    elif status >= 500:
        kind = ServerError
    elif status in (401, 403):
        kind = AuthFailed
        tip = f"check {provider.upper()}_API_KEY (and the base URL, if set)"
    else:
        kind = BadRequest
    return kind(message, status=status, retry_after=wait, tip=tip)


def sdk_call(
    sdk: ModuleType,
    *,
    name: str,
    provider: str,
    secret: str,
    timeout: float,
    call: Callable[[], Any],
) -> dict[str, Any]:
    """One raw-response call through an official SDK, its errors mapped to ours.

    The anthropic and openai SDKs are generated alike: the same error class names, and
    `with_raw_response` replies whose body we parse ourselves (an SDK object never
    crosses the seam, and a truncated body is a `MalformedReply`, retried).
    """
    try:
        raw = call()
    except sdk.APITimeoutError:
        raise ProviderTimeout(
            f"{name}: no reply within {timeout:g} s", tip="raise timeout_s"
        ) from None
    except sdk.APIConnectionError as exc:
        raise ConnectionFailed(f"{name}: {redact(str(exc), secret)}") from None
    except sdk.APIStatusError as exc:
        raise status_error(exc.status_code, dict(exc.response.headers), exc.body,
                           provider=provider, secret=secret) from None  # fmt: skip
    except sdk.APIResponseValidationError as exc:
        raise MalformedReply(f"{name}: {redact(str(exc), secret)}") from None
    try:
        data: dict[str, Any] = json.loads(raw.http_response.content)
    except ValueError as exc:
        raise MalformedReply(f"{name}: reply is not JSON ({exc})") from None
    return data
