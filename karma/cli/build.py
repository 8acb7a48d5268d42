"""`karma build` and `karma resume`: run a request (or a stopped run) to a build branch.

Progress goes to stderr through the terminal view (or one line per event without a
TTY); `--json` prints the result contract on stdout. The exit code follows the status.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from karma.cli.app import TrustRepoConfig, app, err_console, out, state
from karma.errors import ExitCode, UsageError
from karma.ids import RunId

if TYPE_CHECKING:
    from karma.ci import GitHubLog
    from karma.config import KarmaConfig
    from karma.events import EventBus
    from karma.store import Store


Executor = Annotated[
    str | None,
    typer.Option(
        "--executor",
        help="Where attempts run: local, or dask://HOST:PORT (executor.kind, executor.address).",
        show_default=False,
    ),
]


@contextlib.contextmanager
def _session(
    config: KarmaConfig, *, ci: bool
) -> Iterator[tuple[Store, EventBus, GitHubLog | None]]:
    """The run store and the event bus with its listeners: the record, and either the
    terminal view or, in CI, the GitHub log (its masks printed before anything else)."""
    from karma.ci import GitHubLog, github_sink, is_ci
    from karma.session import session
    from karma.ui import TerminalView

    ci_log = (github_sink(os.environ) or GitHubLog(sys.stderr)) if ci or is_ci(os.environ) else None
    with contextlib.ExitStack() as stack:
        view = ci_log or stack.enter_context(TerminalView(err_console))
        store, bus = stack.enter_context(session(config.db_path(state.repo), [view]))
        yield store, bus, ci_log


def _prune_expired(store: Store, config: KarmaConfig) -> None:
    """`store.retention_days`: old finished runs go before a new build (bounded, no VACUUM)."""
    from karma.retention import prune_expired

    pruned = prune_expired(store, config.store.retention_days, state.repo / ".karma" / "reports")
    if pruned is not None and pruned.runs:
        err_console.print(
            f"pruned {len(pruned.runs)} run(s) older than {config.store.retention_days} days "
            "(store.retention_days)",
            markup=False,
            highlight=False,
        )


def _expire_waiting(store: Store, config: KarmaConfig) -> None:
    """`approval.timeout_h` with `on_timeout = "reject"`: runs waiting too long end."""
    from karma.waiting import expire_waiting
    from karma.workspace import Workspace

    if not config.approval.timeout_h:
        return
    for run_id in expire_waiting(store, config.approval, Workspace(state.repo).root):
        err_console.print(f"rejected run {run_id}: no decision within approval.timeout_h",
                          markup=False, highlight=False)  # fmt: skip


def _run(
    spec: str,
    *,
    ci: bool,
    json_out: bool,
    jobs: int | None,
    max_cost: float | None,
    plan_file: Path | None,
    resume: str | None,
    gates: bool,
    executor: str | None = None,
) -> ExitCode:
    from karma.heap import long_lived

    with long_lived():  # the engine's modules: 0.05 s less of the start
        from karma.ci import finish_ci
        from karma.engine import build
        from karma.executor.cluster import executor_flags
        from karma.notify import notify_run_end
        from karma.text.inert import inert_lines

    flags = executor_flags(executor) if executor else {}
    config = state.config(**{"build.jobs": jobs, "budget.max_cost_usd": max_cost, **flags})
    with _session(config, ci=ci) as (store, bus, ci_log):
        if resume is None:
            _prune_expired(store, config)
            _expire_waiting(store, config)
        result = build(spec, repo=state.repo, config=config, store=store, bus=bus,
                       plan_file=plan_file, resume=resume, gates=gates)  # fmt: skip
        notify_run_end(config.notify, store, bus, result.run_id)
        if ci_log is not None:
            ci_log.close()
            finish_ci({**result.to_json(), "reason": result.reason}, os.environ, store=store)
        forecast = _forecast(store, result.run_id)
    if json_out:
        out.print(json.dumps(result.to_json(), indent=2), markup=False, highlight=False)
    else:
        from karma.ui import summary_lines

        out.print(
            f"{result.status}: branch {result.branch} (run {result.run_id}, "
            f"${result.cost_usd:.4f})",
            markup=False,
            highlight=False,
        )
        if result.reason:  # may quote failing output or model text: made inert
            err_console.print(inert_lines(result.reason), markup=False, highlight=False)
        resumable = result.status in ("interrupted", "infrastructure")
        summary = summary_lines(result.to_json(), forecast_usd=forecast, resumable=resumable)
        err_console.print("\n".join(summary), markup=False, highlight=False, soft_wrap=True)
    return result.exit_code


def _forecast(store: Store, run_id: RunId) -> float | None:
    """The plan's forecast cost, as recorded with the run (None before a plan)."""
    row = store.run(run_id)
    if row is None or not row.plan_json:
        return None
    value = json.loads(row.plan_json).get("estimated_cost_usd")
    return float(value) if isinstance(value, (int, float)) else None


@app.command("build")
def build_command(
    spec: Annotated[str, typer.Argument(help="The feature request.", show_default=False)] = "",
    spec_file: Annotated[
        Path | None, typer.Option("--spec-file", help="Read the request from a file.")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    jobs: Annotated[
        int | None, typer.Option("--jobs", "-j", help="Tasks run at once (build.jobs).")
    ] = None,
    max_cost: Annotated[
        float | None, typer.Option("--max-cost", help="Budget in USD (budget.max_cost_usd).")
    ] = None,
    plan_file: Annotated[
        Path | None,
        typer.Option("--plan-file", help="Run this plan instead of asking the planner."),
    ] = None,
    resume: Annotated[str | None, typer.Option("--resume", help="Continue a stopped run.")] = None,
    no_gates: Annotated[bool, typer.Option("--no-gates", help="Skip the quality gates.")] = False,
    ci: Annotated[
        bool, typer.Option("--ci", help="CI mode (automatic when GITHUB_ACTIONS=true).")
    ] = False,
    executor: Executor = None,
    trust_repo_config: TrustRepoConfig = False,
) -> ExitCode:
    """Plan, build, heal and gate a feature request on a new branch."""
    state.trust(trust_repo_config)
    if spec_file is not None:
        try:
            spec = spec_file.read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"{spec_file}: cannot read: {exc.strerror}") from None
    if not resume and not spec.strip():
        raise UsageError("the request is empty", tip='karma build "what to build"')
    return _run(
        spec,
        ci=ci,
        json_out=json_out,
        jobs=jobs,
        max_cost=max_cost,
        plan_file=plan_file,
        resume=resume,
        gates=not no_gates,
        executor=executor,
    )


@app.command("resume")
def resume_command(
    run_id: Annotated[
        str | None, typer.Argument(help="The run to continue (default: the stopped one).")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    jobs: Annotated[int | None, typer.Option("--jobs", "-j")] = None,
    executor: Executor = None,
    trust_repo_config: TrustRepoConfig = False,
) -> ExitCode:
    """Continue a build that was interrupted or killed (without RUN_ID: this repo's one)."""
    state.trust(trust_repo_config)
    return _run(
        "",
        ci=False,
        json_out=json_out,
        jobs=jobs,
        max_cost=None,
        plan_file=None,
        resume=run_id or _stopped_run(),
        gates=True,
        executor=executor,
    )


def _stopped_run() -> str:
    """The repository's one interrupted or killed run; with several, they are listed."""
    from karma.store import Store
    from karma.text.inert import inert_lines
    from karma.workspace import Workspace

    db = state.config().db_path(state.repo)
    if not db.is_file():
        raise UsageError(f"no run to resume: {db} does not exist", tip='karma build "..."')
    store = Store(db)
    try:
        rows = store.stopped_runs(Workspace(state.repo).root)
    finally:
        store.close()
    rows = [r for r in rows if r.status != "running" or not _alive(r.pid)]
    if not rows:
        raise UsageError(
            "no interrupted or killed run to resume", tip="`karma runs` lists the runs"
        )
    lines = [
        f"{r.id}  {r.status:<11}  {r.created_at}  {' '.join(r.request.split())[:60]}" for r in rows
    ]
    if len(rows) > 1:
        err_console.print(
            inert_lines("\n".join(lines)), markup=False, highlight=False, soft_wrap=True
        )
        raise UsageError(f"{len(rows)} stopped runs: name one", tip="karma resume <run-id>")
    err_console.print(
        f"resuming {inert_lines(lines[0])}", markup=False, highlight=False, soft_wrap=True
    )
    return rows[0].id


def _alive(pid: int | None) -> bool:
    """A recorded `running` run whose process still exists is not resumable (yet)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@app.command("replay")
def replay_command(
    run_id: Annotated[str, typer.Argument(help="The recorded run to replay.")],
    json_out: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> ExitCode:
    """Re-run a recorded build from its recorded replies (no model calls); report divergence."""
    from karma.replay import replay
    from karma.text.inert import log_safe
    from karma.workspace import Workspace

    config = state.config()
    with _session(config, ci=False) as (store, bus, _):
        report = replay(RunId(run_id), workspace=Workspace(state.repo), config=config, store=store,
                        bus=bus)  # fmt: skip
    data = report.to_json()
    if json_out:
        out.print(json.dumps(data, indent=2), markup=False, highlight=False)
    else:
        verdict = "same result" if report.faithful else "diverged"
        out.print(
            f"replay of {run_id}: {verdict} (branch {report.replay.branch})",
            markup=False,
            highlight=False,
        )
        for line in (*report.task_changes, *report.divergences[:20]):  # quotes recorded text
            out.print(f"  {log_safe(line)}", markup=False, highlight=False)
    return ExitCode.OK if report.faithful else ExitCode.FAILED
