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

from karma.config.keys import (
    PROVIDERS,
    TIERS,
    AgentConfig,
    ApprovalConfig,
    AuditConfig,
    BudgetConfig,
    BuildConfig,
    ChecksConfig,
    ExecutorConfig,
    GatesConfig,
    HealConfig,
    KarmaConfig,
    ModelsConfig,
    NotifyConfig,
    ProviderConfig,
    ProvidersConfig,
    RouterConfig,
    SandboxConfig,
    ScriptedConfig,
    StoreConfig,
    Tier,
    TierPolicy,
)
from karma.config.layers import (
    ENV_ALIASES,
    LOWER_ONLY,
    OPT_IN,
    TRUSTED_ONLY,
    RepoText,
    env_layer,
    load_config,
    trusted_only,
    user_config_path,
)

__all__ = [
    "ENV_ALIASES", "LOWER_ONLY", "OPT_IN", "PROVIDERS", "TIERS", "TRUSTED_ONLY", "AgentConfig",
    "ApprovalConfig", "AuditConfig", "BudgetConfig", "BuildConfig", "ChecksConfig",
    "ExecutorConfig",
    "GatesConfig", "HealConfig", "KarmaConfig", "ModelsConfig", "NotifyConfig", "ProviderConfig",
    "ProvidersConfig", "RepoText", "RouterConfig", "SandboxConfig", "ScriptedConfig",
    "StoreConfig", "Tier", "TierPolicy", "env_layer", "load_config", "trusted_only",
    "user_config_path",
]  # fmt: skip
