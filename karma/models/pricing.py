"""What a call cost: normalised usage times the price table (`recipes/prices.toml`).

Prices are data, per model and per million tokens, with the date they were checked; a
model missing from the table costs 0.0 (and `karma doctor` warns about it).
"""

from __future__ import annotations

import time
from dataclasses import replace

from karma.models.interface import ModelClient, ModelReply, ModelRequest, Usage
from karma.recipes import PriceTable, load_prices


def cost_usd(model: str, usage: Usage, prices: PriceTable | None = None) -> float:
    """USD for `usage` on `model` (`provider:model`); 0.0 for an unknown model."""
    table = prices if prices is not None else load_prices()
    price = table.price(model)
    if price is None:
        return 0.0
    return (
        usage.input_tokens * price.input
        + usage.output_tokens * price.output
        + usage.cache_read_tokens * price.cache_read
        + usage.cache_write_tokens * price.cache_write
    ) / 1e6


class PricedModel:
    """Fills `cost_usd` and `latency_s` (this call's wall time) of every reply."""

    def __init__(self, inner: ModelClient, prices: PriceTable | None = None) -> None:
        self.inner = inner
        self.name = inner.name
        self._prices = prices

    def complete(self, request: ModelRequest) -> ModelReply:
        start = time.perf_counter()
        reply = self.inner.complete(request)
        latency = time.perf_counter() - start
        return replace(
            reply, latency_s=latency, cost_usd=cost_usd(self.name, reply.usage, self._prices)
        )
