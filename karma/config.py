"""Configuration: the keys, their defaults, and where values come from.

Precedence, highest first: command-line flags > `KARMA_*` environment variables >
`karma.toml` > `[tool.karma]` in `pyproject.toml` > the user's own config file
(`$KARMA_CONFIG`, else `$XDG_CONFIG_HOME/karma/config.toml`, else
`~/.config/karma/config.toml`) > defaults. Every layer is merged into one dict and
validated once with pydantic (`extra="forbid"`), so a wrong key is named with the file
it came from. API keys are never part of the config: they are read from the environment
(`ANTHROPIC_API_KEY`, `OPENAI_API_KEY`) when a client is built.

The two repository layers (`karma.toml`, `[tool.karma]`, and a `--config` file inside
the repository) are written by whoever can write the repository, so they are untrusted:
a key in `TRUSTED_ONLY` (where keys go, what runs on the host, what reaches the
sandbox, what a gate checks) is taken from them only when the user opted in from
outside the repository (`--trust-repo-config`, `trust_repo_config = true` in the user's
config file, or `KARMA_TRUST_REPO_CONFIG=1`). Otherwise it is dropped with a warning
naming the key and the file: a repository may carry such keys for its trusted users.
"""

from __future__ import annotations

import copy
import fnmatch
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from karma.errors import ConfigError
from karma.tomlfile import parse_toml, read_toml

PROVIDERS = ("anthropic", "openai", "scripted")
Tier = Literal["small", "medium", "large"]
TIERS: tuple[Tier, ...] = ("small", "medium", "large")


class _Section(BaseModel):
    # Field docstrings are the documentation, and say which keys are trusted-only.
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


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
    """Any compatible server (Ollama, vLLM, llama.cpp, LM Studio); else `<PROVIDER>_BASE_URL`.
    Trusted layers only: the API key goes there."""
    timeout_s: float = Field(default=120.0, gt=0)
    """Timeout of one HTTP call."""
    max_retries: int = Field(default=4, ge=0, le=10)
    """Retries of 429/529/5xx/timeouts, with jittered backoff honouring `retry-after`."""
    backoff_s: float = Field(default=1.0, ge=0)
    """First backoff; doubles per retry, with full jitter, capped at `backoff_max_s`."""
    backoff_max_s: float = Field(default=30.0, ge=0)


class ScriptedConfig(_Section):
    script: Path | None = None
    """The YAML/JSON script the `scripted` provider replies from. Trusted layers only: a
    host file the model's replies come from."""


class ProvidersConfig(_Section):
    anthropic: ProviderConfig = ProviderConfig()
    openai: ProviderConfig = ProviderConfig()
    scripted: ScriptedConfig = ScriptedConfig()


class SandboxConfig(_Section):
    """Every task runs in a Docker container with these limits."""

    base_image: str = "python:3.12-slim"
    """Base of the stack images (`KARMA_BASE_IMAGE`). Trusted layers only."""
    memory_mb: int = Field(default=2048, ge=64)
    """Trusted layers only, except that a repository may lower it."""
    cpus: float = Field(default=1.0, gt=0)
    """Trusted layers only, except that a repository may lower it."""
    pids_limit: int = Field(default=256, ge=16)
    """Trusted layers only, except that a repository may lower it."""
    tmpfs_mb: int = Field(default=256, ge=16)
    """Size of the writable scratch tmpfs at /tmp (the root filesystem is read-only).
    Trusted layers only, except that a repository may lower it."""
    exec_timeout_s: float = Field(default=600.0, gt=0)
    """Default timeout of one command in the sandbox."""
    workdir: str = "/workspace"
    """Where the task's worktree is mounted inside the container. Trusted layers only."""
    env_allowlist: tuple[str, ...] = ("LANG", "LC_ALL", "TZ")
    """Host variables passed into the sandbox; nothing else of the host's environment is.
    Trusted layers only: a key named here would reach the model's code."""
    user: str = "1000:1000"
    """The unprivileged user commands run as. Trusted layers only."""
    allow_sdists: bool = False
    """Build sdist-only dependencies (their setup.py runs in the image's download container,
    with the network); else such a dependency fails the image build. Trusted layers only."""
    lease_s: float = Field(default=30.0, ge=2)
    """A sandbox stops by itself when its `karma` process has not renewed it for this long.
    Trusted layers only."""
    max_lifetime_s: float = Field(default=43_200.0, ge=0)
    """A sandbox stops by itself after this long whatever happens (0: no limit). Trusted
    layers only."""


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
    context_elide_at: float = Field(default=0.6, gt=0.0, le=1.0)
    """Share of the model's context window (`context_window` in recipes/prices.toml) past
    which older tool outputs are replaced by short stubs, oldest first; the brief, the
    newest turns and the last failing output are kept. Any layer may set it (a repository
    can only make its own attempts see less or more of their history)."""


class BuildConfig(_Section):
    jobs: int = Field(default=4, ge=1, le=64)
    max_retries: int = Field(default=3, ge=0, le=10)
    """Retries per task after its first attempt."""
    review_rounds: int = Field(default=2, ge=0, le=5)


class ApprovalConfig(_Section):
    """How long a run waits for a human (`karma.waiting`)."""

    timeout_h: float = Field(default=0, ge=0)
    """Hours a run may wait for an approval or an answer; 0 waits for ever. Checked when
    `karma build` starts."""
    on_timeout: Literal["keep_waiting", "reject"] = "keep_waiting"
    """What a run waiting past `timeout_h` becomes: still waiting, or rejected (`failed`,
    `rejected by karma: ...`)."""


class NotifyConfig(_Section):
    """Who is told when a run ends (`karma.notify`): a webhook, sent once per run end."""

    webhook_url: str | None = None
    """An http(s) URL that gets a POST per run end (run, status, what waits, the commands
    to approve or answer); None: nobody is told. Trusted layers only: a repository must not
    send its runs' records elsewhere."""
    format: Literal["json", "slack", "plain"] = "json"
    """The body: KARMA's JSON payload, a Slack-compatible `{"text": ...}`, or plain text."""
    timeout_s: float = Field(default=5.0, gt=0, le=60)
    """Per try."""
    retries: int = Field(default=2, ge=0, le=5)
    """Tries after the first one fails (a 5xx, 429, a timeout, a refused connection),
    with a backoff of 0.5 s, 1 s, 2 s..."""


class StoreConfig(_Section):
    db: Path | None = None
    """The run store; default `<repo>/.karma/karma.db` (`KARMA_DB`, `--db`). Trusted layers
    only: a host file KARMA writes."""
    retention_days: int = Field(default=90, ge=0)
    """`karma build` first removes finished runs older than this (at most 20); 0 keeps all.
    Trusted layers only: a repository must not have its own record pruned."""


class AuditConfig(_Section):
    osv_url: str | None = None
    """An OSV endpoint for pip-audit (`KARMA_OSV_URL`), e.g. `karma advisories serve`.
    Trusted layers only: it decides what counts as vulnerable."""


class GatesConfig(_Section):
    suite: str = "default"
    """A suite in `quality_gates/<name>.toml`. Trusted layers only."""
    audit: AuditConfig = AuditConfig()
    overrides: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Per-gate overrides of the suite (`blocking`, thresholds, `command`, `where`, tool
    paths). Trusted layers only: they decide what runs on the host and what is checked."""


class TierPolicy(_Section):
    """What a risk tier of remediations needs before it is applied automatically."""

    min_confidence: float = Field(default=0.0, ge=0, le=1)
    """Classification confidence below which the next safer action is taken instead."""
    approval: bool = False
    """A human must approve: the task escalates with the proposal instead. Trusted layers
    only."""
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
    """Edits to CI workflows, auth, migrations, or a lowered gate: never automatic.
    Trusted layers only."""
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
    trust_repo_config: bool = False
    """Take the `TRUSTED_ONLY` keys from the repository's own layers too
    (`--trust-repo-config`, `KARMA_TRUST_REPO_CONFIG=1`). Trusted layers only: a
    repository cannot vouch for itself."""
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
    notify: NotifyConfig = NotifyConfig()
    approval: ApprovalConfig = ApprovalConfig()

    def db_path(self, repo: Path) -> Path:
        return self.store.db if self.store.db is not None else repo / ".karma" / "karma.db"

    def providers_in_use(self) -> set[str]:
        names = [self.models.small, self.models.medium, self.models.large, self.models.reviewer]
        names.append(self.models.planner_model())
        return {name.partition(":")[0] for name in names}


# The keys the repository's own layers may not set unless the user opted in from outside
# the repository. `*` is one level; a key names its whole subtree. Each field named here
# says "Trusted layers only" in its docstring (a test checks that the two agree).
TRUSTED_ONLY: tuple[str, ...] = (
    "trust_repo_config",
    "providers.*.base_url",
    "providers.scripted.script",
    "sandbox.base_image",
    "sandbox.memory_mb",
    "sandbox.cpus",
    "sandbox.pids_limit",
    "sandbox.tmpfs_mb",
    "sandbox.workdir",
    "sandbox.env_allowlist",
    "sandbox.user",
    "sandbox.allow_sdists",
    "sandbox.lease_s",
    "sandbox.max_lifetime_s",
    "store.db",
    "store.retention_days",
    "gates.suite",
    "gates.overrides",
    "gates.audit.osv_url",
    "heal.*.approval",
    "heal.critical",
    "notify.webhook_url",
)
LOWER_ONLY: frozenset[str] = frozenset(
    {"sandbox.memory_mb", "sandbox.cpus", "sandbox.pids_limit", "sandbox.tmpfs_mb"}
)
"""Trusted-only limits a repository may still lower (a tighter sandbox weakens nothing)."""

OPT_IN = (
    "--trust-repo-config, trust_repo_config = true in the user config, or KARMA_TRUST_REPO_CONFIG=1"
)

# Environment variables with a name of their own; any other `KARMA_SECTION__KEY`
# (double underscore between levels) sets `section.key`.
ENV_ALIASES: Mapping[str, tuple[str, ...]] = {
    "KARMA_BASE_IMAGE": ("sandbox", "base_image"),
    "KARMA_DB": ("store", "db"),
    "KARMA_OSV_URL": ("gates", "audit", "osv_url"),
    "KARMA_MAX_COST": ("budget", "max_cost_usd"),
    "KARMA_JOBS": ("build", "jobs"),
    "KARMA_SCRIPT": ("providers", "scripted", "script"),
    "KARMA_TRUST_REPO_CONFIG": ("trust_repo_config",),
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


RepoText = Callable[[str], str | None]
"""Reads a repository file by its path (`karma.toml`), None when it has none: the working
tree, or a base commit's objects for `karma gate`, where the working tree is the change."""


def env_layer(environ: Mapping[str, str]) -> dict[str, Any]:
    layer: dict[str, Any] = {}
    for name, value in environ.items():
        if name in ENV_ALIASES:
            _set(layer, ENV_ALIASES[name], value)
        elif name.startswith("KARMA_") and "__" in name:
            path = tuple(part.lower() for part in name[len("KARMA_") :].split("__"))
            _set(layer, path, value)
    return layer


def trusted_only(path: tuple[str, ...]) -> bool:
    """Whether the dotted key `path` (or a table above it) is in `TRUSTED_ONLY`."""
    for pattern in TRUSTED_ONLY:
        parts = pattern.split(".")
        if len(path) >= len(parts) and all(
            fnmatch.fnmatchcase(key, part) for key, part in zip(path, parts, strict=False)
        ):
            return True
    return False


def _leaves(tree: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = []
    for key, value in tree.items():
        if isinstance(value, Mapping) and value:
            out += _leaves(value, (*prefix, str(key)))
        else:
            out.append((*prefix, str(key)))
    return out


def _lookup(tree: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = tree
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return node


def _drop(tree: dict[str, Any], path: tuple[str, ...]) -> None:
    """Remove `path`, and the tables it leaves empty."""
    nodes: list[dict[str, Any]] = [tree]
    for key in path[:-1]:
        nodes.append(nodes[-1][key])
    for node, key in reversed(list(zip(nodes, path, strict=True))):
        del node[key]
        if node:
            break


def _lowers(path: tuple[str, ...], value: Any, trusted: Mapping[str, Any]) -> bool:
    """A `LOWER_ONLY` limit set no higher than the trusted layers (or the default) set it."""
    if ".".join(path) not in LOWER_ONLY:
        return False
    current = _lookup(trusted, path)
    if current is None:
        current = KarmaConfig.model_fields[path[0]].default.model_dump()[path[1]]
    try:
        return float(value) <= float(current)
    except (TypeError, ValueError):
        return False


def _untrusted(
    name: str, layer: dict[str, Any], trusted: Mapping[str, Any], warn: Callable[[str], None]
) -> dict[str, Any]:
    """`layer` without its trusted-only keys, each dropped key named in a warning."""
    kept = copy.deepcopy(layer)
    for path in _leaves(layer):
        if trusted_only(path) and not _lowers(path, _lookup(layer, path), trusted):
            _drop(kept, path)
            warn(
                f"warning: {name}: {'.'.join(path)} is ignored: the repository may not set it "
                f"unless you trust its config ({OPT_IN})"
            )
    return kept


def user_config_path(environ: Mapping[str, str]) -> Path | None:
    """The user's own config file: `$KARMA_CONFIG`, else the XDG location."""
    if explicit := environ.get("KARMA_CONFIG"):
        return Path(explicit)
    if xdg := environ.get("XDG_CONFIG_HOME"):
        return Path(xdg) / "karma" / "config.toml"
    if home := environ.get("HOME"):
        return Path(home) / ".config" / "karma" / "config.toml"
    return None


def _inside(path: Path, repo: Path) -> bool:
    return path.resolve().is_relative_to(repo.resolve())


def _repo_toml(
    repo: Path, rel: str, repo_text: tuple[str, RepoText] | None
) -> tuple[str, dict[str, Any]] | None:
    """(name, values) of a repository config file, from the working tree or `repo_text`."""
    if repo_text is None:
        path = repo / rel
        return (str(path), read_toml(path)) if path.is_file() else None
    label, read = repo_text
    text = read(rel)
    return None if text is None else (f"{label}:{rel}", parse_toml(f"{label}:{rel}", text))


def _stderr(line: str) -> None:
    sys.stderr.write(line + "\n")


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
    warn: Callable[[str], None] | None = None,
    repo_text: tuple[str, RepoText] | None = None,
) -> KarmaConfig:
    """Build the config of a repository from every layer; `ConfigError` names a bad key.

    The repository's layers lose their `TRUSTED_ONLY` keys (each one a `warn` line)
    unless a trusted layer sets `trust_repo_config`. `config_file` (`--config`) is a
    trusted layer when it lies outside the repository, a repository layer inside it.
    `repo_text` (a label and a reader) reads the repository's own files from elsewhere
    than the working tree (the base commit, for a gate).
    """
    environ = os.environ if environ is None else environ
    warn = warn or _stderr
    # (name, values, written by the repository)
    layers: list[tuple[str, dict[str, Any], bool]] = []
    user = user_config_path(environ)
    if environ.get("KARMA_CONFIG") and user is not None and not user.is_file():
        raise ConfigError(f"{user}: no such config file (KARMA_CONFIG)")
    if user is not None and user.is_file():
        layers.append((str(user), read_toml(user), _inside(user, repo)))
    pyproject = _repo_toml(repo, "pyproject.toml", repo_text)
    if pyproject is not None:
        tool = pyproject[1].get("tool", {})
        if isinstance(tool, dict) and isinstance(tool.get("karma"), dict):
            layers.append((f"{pyproject[0]} [tool.karma]", tool["karma"], True))
    if config_file is not None:
        if not config_file.is_file():
            raise ConfigError(f"{config_file}: no such config file")
        layers.append((str(config_file), read_toml(config_file), _inside(config_file, repo)))
    elif (karma_toml := _repo_toml(repo, "karma.toml", repo_text)) is not None:
        layers.append((*karma_toml, True))
    layers.append(("environment (KARMA_*)", env_layer(environ), False))
    flag_layer: dict[str, Any] = {}
    for dotted, value in (flags or {}).items():
        if value is not None:
            _set(flag_layer, tuple(dotted.split(".")), value)
    layers.append(("command-line flags", flag_layer, False))

    trusted: dict[str, Any] = {}
    for _, layer, from_repo in layers:
        if not from_repo:
            trusted = _merge(trusted, layer)
    if str(trusted.get("trust_repo_config", "")).lower() not in ("1", "true", "yes", "on"):
        layers = [
            (name, _untrusted(name, layer, trusted, warn) if from_repo else layer, from_repo)
            for name, layer, from_repo in layers
        ]
    merged: dict[str, Any] = {}
    for _, layer, _ in layers:
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
            f"{_origin(loc, [(n, layer) for n, layer, _ in layers])}: {key}: {message}",
            tip="see the Configuration section of the README for the known keys",
        ) from None
