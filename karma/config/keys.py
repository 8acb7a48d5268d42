"""The configuration's keys: every section, its fields, their defaults and their checks.

A field whose docstring says "Trusted layers only" is in `TRUSTED_ONLY`
(`karma.config.layers`): the repository's own files cannot set it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

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


class ChecksConfig(_Section):
    """The checks a task's attempt runs in its sandbox after `finish`."""

    full_suite_max_s: float = Field(default=120.0, ge=0)
    """A suite whose last full run (the tests gate's) took longer than this is not run
    whole after each attempt: the tests the change reaches (its changed test files, and
    the tests that import a changed module) run instead; 0 always selects. The tests
    gate still runs the whole suite on the integrated branch."""
    ahead: bool = True
    """Run the checks while the model thinks of its next reply, each time a reply may have
    changed the worktree (`write_file`, `edit_file`, `run`) and their last run took no
    longer than the model's last reply; at `finish`, a run of the checks on the very tree
    then staged is their result, and they do not run again. Any layer may set it: it
    decides when the checks run, never what they judge."""


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
    override_h: float = Field(default=24, ge=0)
    """Elevated-tier remedies (`quarantine_flaky_test`) proceed and a human is told (a
    `notice`): for this many hours after the run's end, `karma reject RUN --task T`
    overrides one, and the run ends `failed`. 0: told only."""


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
    github_comment: bool = True
    """In GitHub Actions, with `GITHUB_TOKEN` (or `GH_TOKEN`) in the step's env: each run
    end is also a comment on the issue or pull request the workflow run came from."""


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
    """quarantine_flaky_test: proceeds, and a human is told (a notice they may override
    within `approval.override_h`)."""
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


class ExecutorConfig(_Section):
    """Where a build's attempts run (`karma.executor`): here, or on a Dask cluster."""

    kind: Literal["local", "dask"] = "local"
    """`local`: threads of `karma build`; `dask`: tasks of the scheduler at `address`,
    each worker with its own Docker engine and model keys (`--executor`). Trusted layers
    only: a repository must not send its attempts to a cluster of its choosing."""
    address: str | None = None
    """The Dask scheduler, `tcp://HOST:PORT` or `tls://HOST:PORT` (`--executor
    dask://HOST:PORT`). Trusted layers only."""
    connect_timeout_s: float = Field(default=10.0, gt=0, le=300)

    @field_validator("address")
    @classmethod
    def _scheduler(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"(tcp|tls)://[^\s/:]+(:\d{1,5})?", value):
            raise ValueError(f"not a scheduler address (tcp://HOST:PORT): {value!r}")
        return value

    @model_validator(mode="after")
    def _addressed(self) -> ExecutorConfig:
        if self.kind == "dask" and self.address is None:
            raise ValueError('executor.kind = "dask" needs executor.address (tcp://HOST:PORT)')
        return self


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
    checks: ChecksConfig = ChecksConfig()
    store: StoreConfig = StoreConfig()
    gates: GatesConfig = GatesConfig()
    heal: HealConfig = HealConfig()
    notify: NotifyConfig = NotifyConfig()
    approval: ApprovalConfig = ApprovalConfig()
    executor: ExecutorConfig = ExecutorConfig()

    def db_path(self, repo: Path) -> Path:
        return self.store.db if self.store.db is not None else repo / ".karma" / "karma.db"

    def providers_in_use(self) -> set[str]:
        names = [self.models.small, self.models.medium, self.models.large, self.models.reviewer]
        names.append(self.models.planner_model())
        return {name.partition(":")[0] for name in names}
