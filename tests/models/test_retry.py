"""The retry layer on its own, with a canned client (a real class, no mocks)."""

from __future__ import annotations

import pytest

from karma.models.interface import (
    AuthFailed,
    ModelReply,
    ModelRequest,
    Overloaded,
    ProviderError,
    RateLimited,
    SpendLimitReached,
    Usage,
    UserMessage,
)
from karma.models.retry import RetryingModel, RetryPolicy

REQUEST = ModelRequest("s", (UserMessage("hi"),))
OK = ModelReply("ok", (), "end_turn", Usage(1, 1), "canned:x")


class Canned:
    """Raises the queued errors in order, then answers."""

    name = "canned:x"

    def __init__(self, *errors: ProviderError) -> None:
        self.errors = list(errors)
        self.calls = 0

    def complete(self, request: ModelRequest) -> ModelReply:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return OK


def test_backoff_is_jittered_exponential_and_capped() -> None:
    inner = Canned(*(Overloaded("busy") for _ in range(5)))
    sleeps: list[float] = []
    model = RetryingModel(inner, RetryPolicy(5, 1.0, 6.0), sleep=sleeps.append, rand=lambda: 1.0)
    assert model.complete(REQUEST) is OK
    assert sleeps == [1.0, 2.0, 4.0, 6.0, 6.0]
    half: list[float] = []
    RetryingModel(
        Canned(Overloaded("b")), RetryPolicy(1), sleep=half.append, rand=lambda: 0.5
    ).complete(REQUEST)
    assert half == [0.5]


def test_retry_after_wins_over_backoff() -> None:
    sleeps: list[float] = []
    inner = Canned(RateLimited("slow down", status=429, retry_after=7.0))
    RetryingModel(inner, RetryPolicy(3, 0.5), sleep=sleeps.append, rand=lambda: 0.0).complete(
        REQUEST
    )
    assert sleeps == [7.0]


def test_huge_retry_after_is_not_waited_for() -> None:
    inner = Canned(RateLimited("come back tomorrow", status=429, retry_after=86_400))
    sleeps: list[float] = []
    with pytest.raises(RateLimited, match="gave up after 1 attempt"):
        RetryingModel(inner, RetryPolicy(3), sleep=sleeps.append).complete(REQUEST)
    assert sleeps == []


@pytest.mark.parametrize(
    "error", [SpendLimitReached("spend limit", status=429), AuthFailed("bad key", status=401)]
)
def test_never_retried(error: ProviderError) -> None:
    inner = Canned(error)
    with pytest.raises(type(error)):
        RetryingModel(inner, RetryPolicy(5), sleep=lambda _: None).complete(REQUEST)
    assert inner.calls == 1


def test_on_retry_hears_each_wait() -> None:
    heard: list[tuple[str, int, float]] = []
    inner = Canned(Overloaded("a"), Overloaded("b"))
    model = RetryingModel(
        inner,
        RetryPolicy(3, 1.0),
        sleep=lambda _: None,
        rand=lambda: 1.0,
        on_retry=lambda e, n, d: heard.append((str(e), n, d)),
    )
    model.complete(REQUEST)
    assert heard == [("a", 1, 1.0), ("b", 2, 2.0)]
