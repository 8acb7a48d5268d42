"""Configuration: the keys, their defaults, and where values come from.

Precedence, highest first: command-line flags > `KARMA_*` environment variables >
`karma.toml` > `[tool.karma]` in `pyproject.toml` > defaults. Every layer is merged
into one dict and validated once with pydantic (`extra="forbid"`), so a wrong key is
named with the file it came from. API keys are never part of the config: they are read
from the environment (`ANTHROPIC_API_KEY`, `OPENAI_API_KEY`) when a client is built.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from karma.errors import ConfigError

PROVIDERS = ("anthropic", "openai", "scripted")
Tier = Literal["small", "medium", "large"]
TIERS: tuple[Tier, ...] = ("small", "medium", "large")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_model_name(value: str) -> str:
    provider, sep, model = value.partition(":")
    if not sep or not model:
        raise ValueError(f"model {value!r} must be named 'provider:model'")
    if provider not in PROVIDERS:
        raise ValueError(f"unknown provider {provider!r} (known: {', '.join(PROVIDERS)})")
    return value


class ModelsConfig(_Section):
    """Which model serves each tier, named `provider:model`."""

    small: str = "anthropic:claude-haiku-4-5"
    """Small tasks (calibrated estimate below `router.small_max_tokens`)."""
    medium: str = "anthropic:claude-sonnet-4-5"
    """Medium tasks, and the planner unless `planner` is set."""
    large: str = "anthropic:claude-opus-4-5"
    """Large tasks, and the top of an escalation."""
    reviewer: str = "openai:gpt-5"
    """The reviewer agent; best a different model from those that wrote the code."""
    planner: str | None = None
    """The planner; defaults to the `medium` model."""

    @field_validator("small", "medium", "large", "reviewer", "planner")
    @classmethod
    def _provider_model(cls, value: str | None) -> str | None:
        return None if value is None else _check_model_name(value)

    def for_tier(self, tier: Tier) -> str:
        name: str = getattr(self, tier)
        return name

    def planner_model(self) -> str:
        return self.planner or self.medium


class ProviderConfig(_Section):
    """Connection settings of one provider (keys come only from the environment)."""

    base_url: str | None = None
    """Any compatible server (Ollama, vLLM, llama.cpp, LM Studio); else `<PROVIDER>_BASE_URL`."""
    timeout_s: float = Field(default=120.0, gt=0)
    """Timeout of one HTTP call."""
    max_retries: int = Field(default=4, ge=0, le=10)
    """Retries of 429/529/5xx/timeouts, with jittered backoff honouring `retry-after`."""
    backoff_s: float = Field(default=1.0, ge=0)
    """First backoff; doubles per retry, with full jitter, capped at `backoff_max_s`."""
    backoff_max_s: float = Field(default=30.0, ge=0)


class ScriptedConfig(_Section):
    script: Path | None = None
    """The YAML/JSON script the `scripted` provider replies from."""


class ProvidersConfig(_Section):
    anthropic: ProviderConfig = ProviderConfig()
    openai: ProviderConfig = ProviderConfig()
    scripted: ScriptedConfig = ScriptedConfig()


class SandboxConfig(_Section):
    """Every task runs in a Docker container with these limits."""

    base_image: str = "python:3.12-slim"
    """Base of the stack images (`KARMA_BASE_IMAGE`)."""
    memory_mb: int = Field(default=2048, ge=64)
    cpus: float = Field(default=1.0, gt=0)
    pids_limit: int = Field(default=256, ge=16)
    tmpfs_mb: int = Field(default=256, ge=16)
    """Size of the writable scratch tmpfs at /tmp (the root filesystem is read-only)."""
    exec_timeout_s: float = Field(default=600.0, gt=0)
    """Default timeout of one command in the sandbox."""
    workdir: str = "/workspace"
    """Where the task's worktree is mounted inside the container."""
    env_allowlist: tuple[str, ...] = ("LANG", "LC_ALL", "TZ")
    """Host variables passed into the sandbox; nothing else of the host's environment is."""
    user: str = "1000:1000"
    """The unprivileged user commands run as."""


class RouterConfig(_Section):
    small_max_tokens: int = Field(default=8_000, gt=0)
    """Calibrated estimates below this go to the `small` tier."""
    medium_max_tokens: int = Field(default=40_000, gt=0)
    """Calibrated estimates below this (and at least `small_max_tokens`) go to `medium`."""
    learn_threshold: float = Field(default=0.8, ge=0, le=1)
    """First-attempt success rate a tier must keep for a kind to stay on it."""
    learn_min_attempts: int = Field(default=10, ge=1)
    """History needed before the router learns from it."""


class BudgetConfig(_Section):
    max_cost_usd: float | None = Field(default=None, gt=0)
    """Refuse plans forecast above this; stop scheduling when spent + committed would pass it."""


class AgentConfig(_Section):
    max_steps: int = Field(default=40, ge=1)
    max_tokens: int = Field(default=400_000, ge=1000)
    max_cost_usd: float = Field(default=5.0, gt=0)
    max_wall_s: float = Field(default=1800.0, gt=0)
    """Wall time of one attempt, every `run` included: each gets at most the time left."""
    max_tool_calls_per_reply: int = Field(default=16, ge=1)
    """Tool calls run from one model reply; the rest get an error result the model sees."""
    max_worktree_mb: float = Field(default=200.0, gt=0)
    """How much an attempt may grow its worktree (files left by `run` included)."""
    output_chars: int = Field(default=8_000, ge=500)
    """Tool output sent back to the model is tail-truncated to this many characters."""
    reply_max_tokens: int = Field(default=8_192, ge=256)


class BuildConfig(_Section):
    jobs: int = Field(default=4, ge=1, le=64)
    max_retries: int = Field(default=3, ge=0, le=10)
    """Retries per task after its first attempt."""
    review_rounds: int = Field(default=2, ge=0, le=5)


class StoreConfig(_Section):
    db: Path | None = None
    """The run store; default `<repo>/.karma/karma.db` (`KARMA_DB`, `--db`)."""


class AuditConfig(_Section):
    osv_url: str | None = None
    """An OSV endpoint for pip-audit (`KARMA_OSV_URL`), e.g. `karma advisories serve`."""


class GatesConfig(_Section):
    suite: str = "default"
    """A suite in `quality_gates/<name>.toml`."""
    audit: AuditConfig = AuditConfig()
    overrides: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Per-gate overrides of the suite (`blocking`, thresholds, `command`)."""


class TierPolicy(_Section):
    """What a risk tier of remediations needs before it is applied automatically."""

    min_confidence: float = Field(default=0.0, ge=0, le=1)
    """Classification confidence below which the next safer action is taken instead."""
    approval: bool = False
    """A human must approve: the task escalates with the proposal instead."""
    cooldown: int = Field(default=0, ge=0)
    """Attempts of the same task that must pass before this tier is used again."""


class HealConfig(_Section):
    """Healing: how a failed attempt is treated (the confidence cascade, the learner)."""

    immediate: TierPolicy = TierPolicy(min_confidence=0.0)
    """retry_with_hint, rerun_failed_tests, fresh_sandbox."""
    standard: TierPolicy = TierPolicy(min_confidence=0.5)
    """raise_memory, raise_timeout, escalate_model, regenerate_lockfile, reinstall_dependencies."""
    elevated: TierPolicy = TierPolicy(min_confidence=0.7, cooldown=1)
    """quarantine_flaky_test: proceeds, and the report tells a human."""
    critical: TierPolicy = TierPolicy(min_confidence=0.9, approval=True)
    """Edits to CI workflows, auth, migrations, or a lowered gate: never automatic."""
    chooser: Literal["thompson", "ucb", "ordered"] = "thompson"
    """How a remediation is picked among a pattern's: learned (Thompson, UCB) or recipe order."""
    reruns: int = Field(default=3, ge=1, le=10)
    """rerun_failed_tests: reruns of the failed tests; passing on one marks the test flaky."""
    memory_factor: float = Field(default=1.5, gt=1)
    timeout_factor: float = Field(default=1.5, gt=1)
    loop_guard: int = Field(default=6, ge=1)
    """Times one (signature, remediation) may be applied in a run, across all its tasks."""
    output_tail_chars: int = Field(default=32_000, ge=1_000)
    """The output tail kept as evidence and classified (ANSI stripped)."""
    recall_limit: int = Field(default=5, ge=0)
    """Prevention hints from past failures put in a first attempt's prompt."""

    @field_validator("critical")
    @classmethod
    def _critical_needs_approval(cls, value: TierPolicy) -> TierPolicy:
        if not value.approval:
            raise ValueError("the critical tier always needs approval")
        return value


class KarmaConfig(_Section):
    models: ModelsConfig = ModelsConfig()
    providers: ProvidersConfig = ProvidersConfig()
    sandbox: SandboxConfig = SandboxConfig()
    router: RouterConfig = RouterConfig()
    budget: BudgetConfig = BudgetConfig()
    agent: AgentConfig = AgentConfig()
    build: BuildConfig = BuildConfig()
    store: StoreConfig = StoreConfig()
    gates: GatesConfig = GatesConfig()
    heal: HealConfig = HealConfig()

    def db_path(self, repo: Path) -> Path:
        return self.store.db if self.store.db is not None else repo / ".karma" / "karma.db"

    def providers_in_use(self) -> set[str]:
        names = [self.models.small, self.models.medium, self.models.large, self.models.reviewer]
        names.append(self.models.planner_model())
        return {name.partition(":")[0] for name in names}


# Environment variables with a name of their own; any other `KARMA_SECTION__KEY`
# (double underscore between levels) sets `section.key`.
ENV_ALIASES: Mapping[str, tuple[str, ...]] = {
    "KARMA_BASE_IMAGE": ("sandbox", "base_image"),
    "KARMA_DB": ("store", "db"),
    "KARMA_OSV_URL": ("gates", "audit", "osv_url"),
    "KARMA_MAX_COST": ("budget", "max_cost_usd"),
    "KARMA_JOBS": ("build", "jobs"),
    "KARMA_SCRIPT": ("providers", "scripted", "script"),
}


def _set(tree: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        tree = tree.setdefault(key, {})
        if not isinstance(tree, dict):
            raise ConfigError(f"config key {'.'.join(path)} conflicts with a value")
    tree[path[-1]] = value


def _merge(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: malformed TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None


def env_layer(environ: Mapping[str, str]) -> dict[str, Any]:
    layer: dict[str, Any] = {}
    for name, value in environ.items():
        if name in ENV_ALIASES:
            _set(layer, ENV_ALIASES[name], value)
        elif name.startswith("KARMA_") and "__" in name:
            path = tuple(part.lower() for part in name[len("KARMA_") :].split("__"))
            _set(layer, path, value)
    return layer


def _origin(path: tuple[str | int, ...], layers: list[tuple[str, dict[str, Any]]]) -> str:
    """The name of the highest layer that sets `path` (for error messages)."""
    for name, layer in reversed(layers):
        node: Any = layer
        for key in path:
            if not isinstance(node, dict) or key not in node:
                break
            node = node[key]
        else:
            return str(name)
    return "defaults"


def load_config(
    repo: Path,
    *,
    flags: Mapping[str, Any] | None = None,
    config_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> KarmaConfig:
    """Build the config of a repository from every layer; `ConfigError` names a bad key."""
    environ = os.environ if environ is None else environ
    layers: list[tuple[str, dict[str, Any]]] = []
    pyproject = repo / "pyproject.toml"
    if pyproject.is_file():
        tool = _read_toml(pyproject).get("tool", {})
        if isinstance(tool, dict) and isinstance(tool.get("karma"), dict):
            layers.append((f"{pyproject} [tool.karma]", tool["karma"]))
    toml_path = config_file or repo / "karma.toml"
    if config_file is not None and not config_file.is_file():
        raise ConfigError(f"{config_file}: no such config file")
    if toml_path.is_file():
        layers.append((str(toml_path), _read_toml(toml_path)))
    layers.append(("environment (KARMA_*)", env_layer(environ)))
    flag_layer: dict[str, Any] = {}
    for dotted, value in (flags or {}).items():
        if value is not None:
            _set(flag_layer, tuple(dotted.split(".")), value)
    layers.append(("command-line flags", flag_layer))

    merged: dict[str, Any] = {}
    for _, layer in layers:
        merged = _merge(merged, layer)
    try:
        return KarmaConfig.model_validate(merged)
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = tuple(error["loc"])
        key = ".".join(str(part) for part in loc)
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        raise ConfigError(
            f"{_origin(loc, layers)}: {key}: {message}",
            tip="see the Configuration section of the README for the known keys",
        ) from None
