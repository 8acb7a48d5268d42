"""Helpers of the model-layer tests: clients built by `get_model` against the loopback server."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from karma.config import KarmaConfig
from karma.models import get_model
from karma.models.interface import ModelClient
from karma.testing.model_server import ModelServer

SECRET = "sk-test-SECRET-value-0123456789"
MODELS = {"anthropic": "anthropic:claude-sonnet-4-5", "openai": "openai:gpt-5"}


@dataclass
class Connected:
    client: ModelClient
    sleeps: list[float] = field(default_factory=list)


Connect = Callable[..., Connected]


def config_for(server: ModelServer, **settings: object) -> KarmaConfig:
    base = {"timeout_s": 10.0, "max_retries": 2, "backoff_s": 0.01, "backoff_max_s": 0.05}
    base.update(settings)
    return KarmaConfig.model_validate(
        {
            "providers": {
                "anthropic": {**base, "base_url": server.anthropic_base_url},
                "openai": {**base, "base_url": server.openai_base_url},
            }
        }
    )


@pytest.fixture
def secret() -> str:
    """The API key the tests use: it must never show up in an error."""
    return SECRET


@pytest.fixture
def server_config(model_server: ModelServer) -> Callable[..., KarmaConfig]:
    """`server_config(**provider_settings)`: a config whose providers point at the server."""
    return lambda **settings: config_for(model_server, **settings)


@pytest.fixture(params=["anthropic", "openai"])
def provider(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_client(model_server: ModelServer) -> Callable[..., Connected]:
    """`make_client("provider:model", **provider_settings)`: a retrying, priced client on the
    server (`.client`, and `.sleeps`: the backoffs the retry layer asked for, not waited)."""

    def make(name: str, **settings: object) -> Connected:
        sleeps: list[float] = []
        client = get_model(
            name,
            config_for(model_server, **settings),
            environ={"ANTHROPIC_API_KEY": SECRET, "OPENAI_API_KEY": SECRET},
            sleep=sleeps.append,
        )
        return Connected(client, sleeps)

    return make


@pytest.fixture
def connect(make_client: Callable[..., Connected], provider: str) -> Connect:
    """`connect(**provider_settings)`: `make_client` for each provider in turn."""
    return lambda **settings: make_client(MODELS[provider], **settings)
