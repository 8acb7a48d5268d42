"""The one retry layer of every model call.

A `ProviderError` whose class says `retryable` (429, 529, 5xx, timeouts, lost
connections, truncated or malformed bodies) is tried again after a jittered exponential
backoff, or after the server's `retry-after` when it sent one. Everything else — a spend
limit, a bad key, a bad request — is raised at once. The SDKs' own retries are off, so
the attempts counted here are the attempts made. `sleep` is injectable so tests do not
wait.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from karma.models.interface import ModelClient, ModelReply, ModelRequest, ProviderError

RETRY_AFTER_CAP_S = 300.0
"""A `retry-after` longer than this is not waited for: the call fails instead."""


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 4
    """Retries after the first attempt."""
    backoff_s: float = 1.0
    """The first backoff's ceiling; doubles per retry (full jitter: uniform in [0, ceiling])."""
    backoff_max_s: float = 30.0

    def delay(self, retry: int, error: ProviderError, rand: Callable[[], float]) -> float:
        """Seconds to wait before retry number `retry` (0-based)."""
        if error.retry_after is not None:
            # The server knows best; a little jitter keeps parallel tasks from waking together.
            return error.retry_after + rand() * min(1.0, self.backoff_s)
        ceiling = min(self.backoff_max_s, self.backoff_s * 2.0**retry)
        return rand() * ceiling


RetryHook = Callable[[ProviderError, int, float], None]
"""Told (error, retry number starting at 1, delay in seconds) before each wait."""


class RetryingModel:
    """Wraps a `ModelClient`; `complete` retries retryable errors per `policy`."""

    def __init__(
        self,
        inner: ModelClient,
        policy: RetryPolicy,
        *,
        sleep: Callable[[float], None] = time.sleep,
        rand: Callable[[], float] = random.random,
        on_retry: RetryHook | None = None,
    ) -> None:
        self.inner = inner
        self.name = inner.name
        self.policy = policy
        self._sleep = sleep
        self._rand = rand
        self._on_retry = on_retry

    def complete(self, request: ModelRequest) -> ModelReply:
        retry = 0
        while True:
            try:
                return self.inner.complete(request)
            except ProviderError as error:
                if not error.retryable:
                    raise
                if retry >= self.policy.max_retries:
                    raise _gave_up(error, retry + 1) from error
                if error.retry_after is not None and error.retry_after > RETRY_AFTER_CAP_S:
                    raise _gave_up(error, retry + 1) from error
                delay = self.policy.delay(retry, error, self._rand)
                retry += 1
                if self._on_retry is not None:
                    self._on_retry(error, retry, delay)
                self._sleep(delay)


def _gave_up(error: ProviderError, attempts: int) -> ProviderError:
    """The same kind of error, saying how many attempts were made."""
    tries = "1 attempt" if attempts == 1 else f"{attempts} attempts"
    return type(error)(
        f"{error} (gave up after {tries})",
        status=error.status,
        retry_after=error.retry_after,
        tip=error.tip or "the provider kept failing; try again later or raise max_retries",
    )
