"""One model class for both official SDKs: a provider is its `Wire` — the SDK module, its
client, the raw-response call, and the request and reply codecs — and `SdkModel` is the
same for both (one client per model, the SDK's own retries off: `karma.models.retry`
retries, honouring `retry-after` and the spend limits)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from karma.models.http_errors import sdk_call
from karma.models.interface import ModelReply, ModelRequest


@dataclass(frozen=True)
class Wire:
    """How one provider's SDK is spoken."""

    provider: str
    sdk: ModuleType
    client: Callable[..., Any]
    """The SDK's client class (`anthropic.Anthropic`, `openai.OpenAI`)."""
    create: Callable[[Any], Callable[..., Any]]
    """A client's raw-response create call (`client.messages.with_raw_response.create`)."""
    body: Callable[[str, ModelRequest], dict[str, Any]]
    parse: Callable[[Any, str], ModelReply]


class SdkModel:
    """`<provider>:<model>` through the provider's official SDK."""

    def __init__(self, wire: Wire, model: str, *, api_key: str, base_url: str | None,
                 timeout_s: float) -> None:  # fmt: skip
        self.wire = wire
        self.name = f"{wire.provider}:{model}"
        self.model = model
        self._key = api_key
        self._timeout = timeout_s
        self._client = wire.client(
            api_key=api_key, base_url=base_url, timeout=timeout_s, max_retries=0
        )

    def complete(self, request: ModelRequest) -> ModelReply:
        body = self.wire.body(self.model, request)
        create = self.wire.create(self._client)
        data = sdk_call(
            self.wire.sdk,
            name=self.name,
            provider=self.wire.provider,
            secret=self._key,
            timeout=self._timeout,
            call=lambda: create(**body, timeout=self._timeout),
        )
        return self.wire.parse(data, self.name)

    def close(self) -> None:
        self._client.close()
