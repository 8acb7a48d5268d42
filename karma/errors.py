"""The one exception tree and the exit codes it maps to.

Every error KARMA raises on purpose is a `KarmaError`; each seam has its own base
(`ConfigError`, `ProviderError`, `SandboxError`, `GateError`, `PlanError`, ...). They are
caught in three places only: the agent loop, the scheduler and the CLI. The CLI turns
one into a single line, a tip and the `exit_code` the error carries.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes: a public contract (README, "Exit codes")."""

    OK = 0
    FAILED = 1  # build or gate failed, or escalated to a human
    USAGE = 2  # usage or configuration error
    ENVIRONMENT = 3  # no Docker, no key, daemon lost
    BUDGET = 4  # budget exceeded
    INTERRUPTED = 130


class KarmaError(Exception):
    """Base of every error KARMA raises deliberately."""

    exit_code: ExitCode = ExitCode.FAILED
    tip: str | None = None

    def __init__(self, message: str, *, tip: str | None = None) -> None:
        super().__init__(message)
        if tip is not None:
            self.tip = tip


class UsageError(KarmaError, ValueError):
    exit_code = ExitCode.USAGE


class ConfigError(KarmaError, ValueError):
    exit_code = ExitCode.USAGE


class EnvironmentProblem(KarmaError, RuntimeError):
    """Something outside KARMA is missing: Docker, a key, a tool."""

    exit_code = ExitCode.ENVIRONMENT


class MissingKeyError(EnvironmentProblem):
    pass


class BudgetExceeded(KarmaError):
    exit_code = ExitCode.BUDGET


class Interrupted(KarmaError):
    exit_code = ExitCode.INTERRUPTED


class PlanError(KarmaError):
    """The plan could not be made valid."""


class StoreError(KarmaError):
    pass


class WorkspaceError(KarmaError):
    """git worktrees, branches and merges."""


class RecipeError(KarmaError, ValueError):
    """A recipe file (stack, failure pattern, price table) is malformed."""

    exit_code = ExitCode.USAGE


class GateError(KarmaError):
    pass
