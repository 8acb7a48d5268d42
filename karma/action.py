"""The action's step (action.yml): validate its inputs, then build or gate, and report.

The action passes its inputs only through the environment (`KARMA_INPUT_<NAME>`); they are
validated here with pydantic before anything runs. `mode: build` runs the engine with the
CI log subscribed; `mode: gate` runs the gate suite and writes SARIF. Either way the step
ends with the summary, outputs and annotations of `karma.ci.finish_ci`, and when KARMA
cannot run at all it still says so there (`fail_action`).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from karma.ci import GitHubLog, escape_data, finish_ci
from karma.errors import KarmaError, UsageError
from karma.text.inert import log_safe

if TYPE_CHECKING:
    from karma.gates.suite import SuiteResult

# -- the action's inputs ----------------------------------------------------------------------


class ActionInputs(BaseModel):
    """The inputs of action.yml, as the action passes them (`KARMA_INPUT_<NAME>`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    spec: str = ""
    spec_file: str = ""
    mode: Literal["build", "gate"] = "build"
    models: str = ""
    """A TOML snippet (`[models]` table) or the path of a TOML file."""
    max_cost: float | None = Field(None, gt=0, le=10_000)
    jobs: int | None = Field(None, ge=1, le=64)
    base_branch: str = ""

    @field_validator("max_cost", "jobs", mode="before")
    @classmethod
    def _blank(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("base_branch")
    @classmethod
    def _ref(cls, value: str) -> str:
        if (value and not re.fullmatch(r"[A-Za-z0-9._/\-]{1,200}", value)) or ".." in value:
            raise ValueError("must be a plain branch name")
        return value

    def models_toml(self, workdir: Path) -> str | None:
        """The `[models]` config as TOML text (read from a file when given a path)."""
        import tomllib

        text = self.models.strip()
        if not text:
            return None
        if "\n" not in text and "=" not in text:
            path = (workdir / text).resolve()
            try:
                text = path.read_text(encoding="utf-8")
            except OSError as exc:
                raise UsageError(f"input models: {text}: cannot read: {exc.strerror}") from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise UsageError(f"input models: not valid TOML: {exc}") from None
        if "models" not in data:
            text = "[models]\n" + text
        from karma.config import KarmaConfig

        try:
            KarmaConfig.model_validate({"models": tomllib.loads(text)["models"]})
        except ValidationError as exc:
            raise UsageError(f"input models: {_first_error(exc)}") from None
        return text


INPUT_NAMES = ("spec", "spec-file", "mode", "models", "max-cost", "jobs", "base-branch")


def read_inputs(environ: Mapping[str, str]) -> ActionInputs:
    """Validate the action's inputs; a bad one is a `UsageError` naming it."""
    raw = {
        name.replace("-", "_"): environ.get(f"KARMA_INPUT_{name.replace('-', '_').upper()}", "")
        for name in INPUT_NAMES
    }
    raw = {key: value.strip() if key != "spec" else value for key, value in raw.items()}
    if not raw["mode"]:
        raw["mode"] = "build"
    try:
        inputs = ActionInputs.model_validate(raw)
    except ValidationError as exc:
        raise UsageError(
            f"action input {_first_error(exc)}", tip="see the inputs of action.yml"
        ) from None
    if inputs.mode == "build" and not inputs.spec.strip() and not inputs.spec_file:
        raise UsageError("action input spec or spec-file is required in build mode")
    if inputs.spec.strip() and inputs.spec_file:
        raise UsageError("give the action either spec or spec-file, not both")
    return inputs


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(part) for part in err["loc"]).replace("_", "-")
    return f"{where}: {err['msg']}"


# -- the action's step -------------------------------------------------------------------------


def model_env(models_toml: str | None) -> dict[str, str]:
    """`KARMA_MODELS__<KEY>` variables for a validated `[models]` table."""
    import tomllib

    if not models_toml:
        return {}
    table = tomllib.loads(models_toml).get("models", {})
    return {f"KARMA_MODELS__{key.upper()}": str(value) for key, value in table.items()}


def fail_action(
    environ: Mapping[str, str], message: str, *, stream: IO[str] | None = None
) -> list[str]:
    """KARMA could not produce a result: say so in the log, the summary and the outputs."""
    target = stream if stream is not None else sys.stderr
    target.write(f"::error title=KARMA::{escape_data(log_safe(message, 1000))}\n")
    target.flush()
    result: dict[str, Any] = {
        "status": "error",
        "run_id": None,
        "gates": [],
        "cost_usd": 0.0,
        "reason": message,
    }
    return finish_ci(result, environ, stream=target)


def switch_branch(repo: Path, branch: str) -> str | None:
    from karma.errors import WorkspaceError
    from karma.hostgit import open_repo

    try:
        open_repo(repo).run("switch", "--quiet", branch, timeout=120)
    except WorkspaceError as exc:
        return f"cannot check out base-branch {branch}: {exc}"
    return None


def run_build_action(
    inputs: ActionInputs,
    *,
    repo: Path,
    environ: Mapping[str, str],
    config: Any,
    build_fn: Callable[..., Any] | None = None,
) -> tuple[int, dict[str, Any] | None]:
    """`mode: build`: the build with the CI log, then the summary, outputs and annotations."""
    from karma.session import recording_bus
    from karma.store import Store

    if build_fn is None:
        from karma.engine import build

        build_fn = build
    spec = inputs.spec
    if inputs.spec_file:
        try:
            spec = (repo / inputs.spec_file).read_text(encoding="utf-8")
        except OSError as exc:
            fail_action(environ, f"spec-file {inputs.spec_file}: cannot read: {exc.strerror}")
            return int(UsageError.exit_code), None
    if inputs.base_branch and (problem := switch_branch(repo, inputs.base_branch)):
        fail_action(environ, problem)
        return int(UsageError.exit_code), None
    log = GitHubLog(sys.stderr)
    store = Store(config.db_path(repo))
    bus = recording_bus(store, [log])
    try:
        result = build_fn(spec, repo=repo, config=config, store=store, bus=bus)
        log.close()
        data: dict[str, Any] = result.to_json()
        if getattr(result, "reason", ""):
            data = {**data, "reason": result.reason}
        finish_ci(data, environ, store=store)
        from karma.notify import notify_run_end

        notify_run_end(config.notify, store, bus, result.run_id, environ)
        return int(result.exit_code), result.to_json()
    except KarmaError as exc:  # the build could not run: the action still reports
        log.close()
        fail_action(environ, f"{exc}" + (f" (tip: {exc.tip})" if exc.tip else ""))
        return int(exc.exit_code), None
    except Exception as exc:
        # Not ours to handle, but nobody watches a runner: say so in the outputs, then re-raise.
        log.close()
        fail_action(environ, f"KARMA crashed: {type(exc).__name__}: {exc}")
        raise
    finally:
        store.close()


def run_gate_action(inputs: ActionInputs, *, repo: Path, environ: Mapping[str, str]) -> int:
    """`mode: gate`: the gate suite on the checkout; SARIF for code scanning; the CI outputs."""
    from karma.config import load_config
    from karma.gates import gate_tree
    from karma.gates.change import resolve
    from karma.home import base_roots, commit_text
    from karma.layout import commit_layout

    base = inputs.base_branch or environ.get("GITHUB_BASE_REF", "")
    base_ref = f"origin/{base}" if base and not base.startswith("origin/") else base or "HEAD"
    try:
        base_sha = resolve(repo, base_ref)
        # The checkout is the pull request's head: its own config files count as at the base.
        config = load_config(
            repo,
            environ=environ,
            repo_text=(base_sha[:12], lambda r: commit_text(repo, base_sha, r)),
        )
        # The checkout is the pull request's head: gate data and the stack come from the base.
        with base_roots(repo, base_sha, environ) as data:
            layout = commit_layout(repo, base_sha, data)
            stack = layout.primary.stack if layout.placed else None
            result = gate_tree(repo, base_sha, config, data=data, stack=stack, layout=layout)
    except KarmaError as exc:  # the gates could not run: the action still reports
        fail_action(environ, f"{exc}" + (f" (tip: {exc.tip})" if exc.tip else ""))
        return int(exc.exit_code)
    for gate in result.as_json()["gates"]:
        sys.stderr.write(
            f"karma gate {log_safe(gate['name'], 60)} {gate['status']} "
            f"{log_safe(gate.get('summary', ''), 200)}\n"
        )
    publish_gates(result, repo=repo, environ=environ)
    return 0 if result.status == "passed" else 1


def publish_gates(result: SuiteResult, *, repo: Path, environ: Mapping[str, str]) -> list[str]:
    """A gate run's SARIF (for code scanning), annotations, step summary and outputs;
    returns what could not be written."""
    from karma.gates.render import render

    temp = Path(environ.get("RUNNER_TEMP") or repo / ".karma")
    temp.mkdir(parents=True, exist_ok=True)
    sarif = temp / "karma.sarif"
    sarif.write_text(render(result, "sarif"), encoding="utf-8")
    return finish_ci(result.as_json(), environ, sarif=str(sarif))
