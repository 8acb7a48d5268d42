"""What KARMA leaves behind, on the command line: report, show, why, nightly, ci action.

Each command reads the run store (or runs the night) through `karma.report`,
`karma.provenance`, `karma.nightly` and `karma.ci`; this module only parses and prints.
`karma runs` (list, prune, export) is `karma.cli.runs`.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from karma.cli.app import app, err_console, out, state
from karma.errors import ExitCode, KarmaError, UsageError

if TYPE_CHECKING:
    from karma.store import Store

ci_app = typer.Typer(help="KARMA inside GitHub Actions (used by action.yml).", no_args_is_help=True)
app.add_typer(ci_app, name="ci")


def _store() -> Store:
    from karma.store import Store

    config = state.config()
    path = config.db_path(state.repo)
    if not path.exists():
        raise UsageError(f"no run store at {path}", tip="run `karma build` first, or pass --db")
    return Store(path)


def _print(text: str, *, raw: bool = False) -> None:
    """Print a result; text that may hold model output is made inert first (not JSON)."""
    from karma.text.inert import inert_lines

    out.print(
        text if raw else inert_lines(text),
        markup=False,
        highlight=False,
        emoji=False,
        soft_wrap=True,
    )


@app.command("report")
def report_command(
    run_id: Annotated[str, typer.Argument(help="The run (a unique prefix is enough).")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="html, md or json.")] = "html",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here.")] = None,
) -> ExitCode:
    """Write a run's report: self-contained HTML, Markdown or JSON."""
    from karma.report import FORMATS, load_run, render, write_run_report

    if fmt not in FORMATS:
        raise UsageError(f"unknown format {fmt!r}", tip="use html, md or json")
    store = _store()
    try:
        if output is None and fmt != "html":
            _print(render(load_run(store, run_id), fmt), raw=fmt == "json")
            return ExitCode.OK
        if output is None:
            path = write_run_report(
                store, run_id, state.repo / ".karma" / "reports", repo=state.repo
            )
        else:
            output.write_text(render(load_run(store, run_id), fmt), encoding="utf-8")
            path = output
    finally:
        store.close()
    _print(str(path))
    return ExitCode.OK


@app.command("show")
def show_command(
    run_id: Annotated[str, typer.Argument(help="The run (a unique prefix is enough).")],
) -> ExitCode:
    """Summarise one run in the terminal: request, tasks, attempts, gates, escalations."""
    from karma.report import load_run
    from karma.run_record import share_text
    from karma.text.inert import log_safe, plain
    from karma.waiting import describe, summary

    store = _store()
    try:
        record = load_run(store, run_id)
        pending = [summary(row) for row in store.pending(record.run_id)]
    finally:
        store.close()
    r, totals = record.run, record.totals()
    _print(
        f"run {record.run_id}: {r.status}  branch {r.branch}  cost "
        f"${totals['cost_usd']:.4f}  {totals['attempts']} attempt(s)  cache read "
        f"{share_text(totals['cache_read_share'])}"
    )
    _print("request: " + plain(r.request, 400).replace("\n", " "))
    if r.reason:
        _print("reason: " + plain(r.reason, 400))
    from rich.table import Table
    from rich.text import Text

    table = Table()
    for column in ("task", "status", "model", "attempts", "tokens in/out", "cache read", "cost"):
        table.add_column(column)
    for t in record.tasks:
        table.add_row(
            Text(log_safe(t.id, 40)),
            Text(log_safe(t.status, 40)),
            Text(log_safe(t.model or "", 40)),
            str(t.attempts),
            f"{t.tokens_in:,}/{t.tokens_out:,}",
            share_text(record.cache_share(t.id)),
            f"${float(t.cost_usd):.4f}",
        )
    out.print(table)
    for a in record.attempts:
        if a.failure_class:
            _print(
                f"{a.task_id} attempt {a.number}: {a.status}, class "
                f"{a.failure_class}, remediation {a.remediation or '-'}"
            )
    for g in record.gates:
        _print(f"gate {g['name']}: {g['status']} ({len(g['findings'])} finding(s))")
    for e in record.escalations:
        _print(f"escalated {e['task_id']}: {log_safe(e['reason'], 300)}")
    for item in pending:
        _print(describe(item))
    return ExitCode.OK


@app.command("why")
def why_command(
    target: Annotated[str, typer.Argument(help="path[:line] or a commit.")],
    rev: Annotated[str | None, typer.Option("--rev", help="Blame at this revision.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> ExitCode:
    """Why did KARMA write this? From a line to its task, model, prompt, plan and request."""
    from karma.provenance import render_text, why
    from karma.store import Store

    path = state.config().db_path(state.repo)
    store = Store(path) if path.exists() else None
    try:
        prov = why(target, repo=state.repo, store=store, rev=rev)
    finally:
        if store is not None:
            store.close()
    _print(json.dumps(prov.to_json(), indent=2) if json_out else render_text(prov), raw=json_out)
    return ExitCode.OK


@app.command("nightly")
def nightly_command(
    queue: Annotated[Path, typer.Option("--queue", help="A folder of spec .md files.")],
    budget_usd: Annotated[float, typer.Option("--budget-usd", help="The night's budget.")] = 10.0,
    until: Annotated[
        str | None, typer.Option("--until", help="Stop starting specs at HH:MM (UTC).")
    ] = None,
    max_hours: Annotated[
        float | None, typer.Option("--max-hours", help="Or after this long.")
    ] = None,
    rebuild: Annotated[
        bool, typer.Option("--rebuild", help="Build specs built before too.")
    ] = False,
    digest_dir: Annotated[
        Path | None, typer.Option("--digest-dir", help="Where the digest goes.")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> ExitCode:
    """Build a queue of specs unattended, by priority, under a budget and a deadline."""
    from datetime import UTC, datetime

    from karma.ci import github_sink
    from karma.digest import write_digest
    from karma.events import iso
    from karma.nightly import deadline_from, night_lock, run_night
    from karma.store import Store
    from karma.ui import TerminalView

    if budget_usd <= 0:
        raise UsageError("--budget-usd must be above 0")
    config = state.config()
    now = datetime.now(UTC)
    deadline = deadline_from(until, max_hours, now)
    sink = github_sink(os.environ)
    view = sink or TerminalView(err_console)
    with night_lock(state.repo / ".karma"):
        store = Store(config.db_path(state.repo))
        try:
            night = run_night(
                queue,
                repo=state.repo,
                config=config,
                store=store,
                budget_usd=budget_usd,
                deadline=deadline,
                rebuild=rebuild,
                subscribers=[view],
            )
        finally:
            store.close()
    where = digest_dir or state.repo / ".karma" / "nightly" / iso(now)[:19].replace(":", "")
    write_digest(night, where)
    if json_out:
        _print(json.dumps(night.to_json(), indent=2), raw=True)
    else:
        for s in night.specs:
            _print(f"{s.status:10} {s.file}  {s.reason}".rstrip())
        _print(f"spent ${night.cost_usd:.4f} of ${budget_usd:.2f}; digest {night.digest['html']}")
    return ExitCode.OK if night.ok else ExitCode.FAILED


@ci_app.command("action")
def ci_action_command() -> ExitCode:
    """The action's step: validate its inputs (KARMA_INPUT_*), then build or gate."""
    from karma import action as ci
    from karma.ci import mask_lines
    from karma.config import load_config

    environ = dict(os.environ)
    for line in mask_lines(environ):  # before anything else is printed
        sys.stdout.write(line + "\n")
    sys.stdout.flush()
    try:
        inputs = ci.read_inputs(environ)
        models = inputs.models_toml(state.repo)
    except KarmaError as exc:
        ci.fail_action(environ, f"invalid input: {exc}")
        return exc.exit_code
    env = {**environ, **ci.model_env(models)}
    if inputs.mode == "gate":
        return ExitCode(ci.run_gate_action(inputs, repo=state.repo, environ=env))
    flags = {"build.jobs": inputs.jobs, "budget.max_cost_usd": inputs.max_cost}
    try:
        config = load_config(state.repo, flags=flags, config_file=state.config_file, environ=env)
    except KarmaError as exc:
        ci.fail_action(environ, f"configuration: {exc}")
        return exc.exit_code
    code, result = ci.run_build_action(inputs, repo=state.repo, environ=environ, config=config)
    if result is not None:
        _print(json.dumps(result, indent=2), raw=True)
    return ExitCode(code) if code in set(ExitCode) else ExitCode.FAILED
