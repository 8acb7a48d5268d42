"""The model layer: `get_model("provider:model", config)` and nothing else to know.

The factory picks the backend named by the provider prefix, imports it lazily (so the
`anthropic` and `openai` SDKs load only when used), and wraps it: the retry layer
outside, pricing inside, so every reply carries its cost and the latency of the call
that answered. Keys come only from the environment; a missing one is a
`MissingKeyError` naming the variable (never a value).
"""

from __future__ import annotations

import importlib
import os
import sys
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, cast

from karma.config import KarmaConfig, ProviderConfig
from karma.errors import ConfigError, MissingKeyError
from karma.heap import long_lived
from karma.models.interface import ModelClient
from karma.models.pricing import PricedModel
from karma.models.retry import RetryHook, RetryingModel, RetryPolicy

if TYPE_CHECKING:
    from karma.models.sdk import Wire

KEY_VARS: Mapping[str, str] = {"anthropic": "ANTHROPIC_API_KEY", "openai": "OPENAI_API_KEY"}
BASE_URL_VARS: Mapping[str, str] = {"anthropic": "ANTHROPIC_BASE_URL", "openai": "OPENAI_BASE_URL"}
PLACEHOLDER_KEY = "karma-local-no-key"
"""Sent to a configured local server (Ollama, vLLM, ...) when no key is set."""


def resolve_endpoint(
    provider: str, settings: ProviderConfig, environ: Mapping[str, str]
) -> tuple[str, str | None]:
    """(key, base URL) of a provider: config `base_url` > `<PROVIDER>_BASE_URL` > SDK default."""
    base_url = settings.base_url or environ.get(BASE_URL_VARS[provider]) or None
    key = environ.get(KEY_VARS[provider]) or None
    if key is None:
        if base_url is None:
            raise MissingKeyError(
                f"{KEY_VARS[provider]} is not set (needed for the {provider} models in the config)",
                tip=f"export {KEY_VARS[provider]}=..., or set providers.{provider}.base_url "
                "for a local server, or pick scripted:* models",
            )
        key = PLACEHOLDER_KEY
    return key, base_url


def check_keys(config: KarmaConfig, environ: Mapping[str, str] | None = None) -> None:
    """Fail before any work starts if a provider the config uses has no key (nor base URL)."""
    environ = os.environ if environ is None else environ
    for provider in sorted(config.providers_in_use() & set(KEY_VARS)):
        resolve_endpoint(provider, getattr(config.providers, provider), environ)


def get_model(
    name: str,
    config: KarmaConfig,
    *,
    environ: Mapping[str, str] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    on_retry: RetryHook | None = None,
) -> ModelClient:
    """The client for `name` (`provider:model`), retrying and priced."""
    provider, sep, model = name.partition(":")
    if not sep or not model:
        raise ConfigError(f"model {name!r} must be named 'provider:model'")
    environ = os.environ if environ is None else environ
    backend: ModelClient
    if provider == "scripted":
        from karma.models.scripted import ScriptedModel

        script = config.providers.scripted.script
        if script is None:
            raise ConfigError(
                f"{name}: providers.scripted.script is not set",
                tip="set KARMA_SCRIPT or providers.scripted.script to a model script",
            )
        backend = ScriptedModel(model, script, sleep=sleep)
        # The script is local: nothing to retry, but the same wrapping keeps one shape.
        policy = RetryPolicy(max_retries=0)
    elif provider in ("anthropic", "openai"):
        settings: ProviderConfig = getattr(config.providers, provider)
        key, base_url = resolve_endpoint(provider, settings, environ)
        from karma.models.sdk import SdkModel

        backend = SdkModel(_wire(provider), model, api_key=key, base_url=base_url,
                           timeout_s=settings.timeout_s)  # fmt: skip
        policy = RetryPolicy(settings.max_retries, settings.backoff_s, settings.backoff_max_s)
    else:
        raise ConfigError(f"unknown model provider {provider!r} in {name!r}")
    return RetryingModel(PricedModel(backend), policy, sleep=sleep, on_retry=on_retry)


__all__ = ["KEY_VARS", "PLACEHOLDER_KEY", "check_keys", "get_model", "resolve_endpoint"]


def _wire(provider: str) -> Wire:
    """The provider's wire (`karma.models.anthropic` or `.openai`), imported on first use,
    as a long-lived part of the heap (`karma.heap`: an SDK is thousands of classes)."""
    name = f"karma.models.{provider}"
    if name not in sys.modules:
        with long_lived():
            importlib.import_module(name)
    return cast("Wire", sys.modules[name].WIRE)
