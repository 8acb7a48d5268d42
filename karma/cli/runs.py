"""`karma runs`: list the recorded runs, prune old ones (`karma.retention`), export one.

Everything printed comes from the run store, which holds model text: it is redacted and
made inert again on the way out (a store written by an older KARMA was not redacted).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from karma.cli.app import app, out, state
from karma.cli.record import _print, _store
from karma.errors import ExitCode, UsageError, WorkspaceError

runs_app = typer.Typer(
    help="The recorded runs: list them (default), prune old ones, export one.",
    invoke_without_command=True,
)
app.add_typer(runs_app, name="runs")


@runs_app.callback()
def runs_command(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option("--limit", "-n", help="How many, newest first.")] = 20,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> ExitCode:
    """List the recorded runs."""
    if ctx.invoked_subcommand is not None:
        return ExitCode.OK
    from rich.table import Table
    from rich.text import Text

    from karma.text.inert import log_safe, plain

    store = _store()
    try:
        rows = store.runs(limit)
    finally:
        store.close()
    keys = ("id", "status", "created_at", "finished_at", "cost_usd", "branch", "request")
    if json_out:
        listed = [r.as_dict() for r in rows]
        _print(
            json.dumps(
                [{k: plain(d[k], 200) if k == "request" else d[k] for k in keys} for d in listed],
                indent=2,
            )
        )
        return ExitCode.OK
    table = Table(title="KARMA runs")
    table.add_column("run", no_wrap=True)
    for column in ("status", "started", "cost"):
        table.add_column(column, no_wrap=True)
    table.add_column("request", overflow="ellipsis", no_wrap=True)
    for r in rows:
        table.add_row(
            Text(log_safe(r.id, 80)),
            Text(log_safe(r.status, 40)),
            r.created_at[:19],
            f"${float(r.cost_usd):.4f}",
            Text(log_safe(r.request, 70).replace("\n", " ")),
        )
    out.print(table)
    return ExitCode.OK


@runs_app.command("prune")
def prune_command(
    older_than: Annotated[
        str | None,
        typer.Option("--older-than", help="Runs created longer ago than this (30d, 12h, 2w)."),
    ] = None,
    keep: Annotated[
        int | None, typer.Option("--keep", help="Never the N newest runs.", min=0)
    ] = None,
    include_unfinished: Annotated[
        bool,
        typer.Option(
            "--include-unfinished", help="Also runs that could be resumed (not while alive)."
        ),
    ] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only say what would go.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> ExitCode:
    """Remove old runs' rows and reports, then VACUUM. Branches are listed, never deleted."""
    from datetime import timedelta

    from karma.retention import parse_age, prune
    from karma.workspace import Workspace

    config = state.config()
    age = parse_age(older_than) if older_than is not None else None
    if age is None and keep is None:
        days = config.store.retention_days
        if days <= 0:
            raise UsageError(
                "store.retention_days is 0 (keep everything)", tip="pass --older-than or --keep"
            )
        age = timedelta(days=days)
    try:
        workspace = Workspace(state.repo)
        branches = workspace.branches("karma") + workspace.branches("karma-work")
    except WorkspaceError:  # not a git repository: no branches to list
        branches = []
    store = _store()
    try:
        result = prune(
            store,
            reports_dir=state.repo / ".karma" / "reports",
            branches=branches,
            older_than=age,
            keep=keep,
            include_unfinished=include_unfinished,
            dry_run=dry_run,
        )
    finally:
        store.close()
    if json_out:
        _print(json.dumps(result.to_json(), indent=2), raw=True)
        return ExitCode.OK
    verb = "would remove" if dry_run else "removed"
    _print(f"{verb} {len(result.runs)} run(s): {', '.join(result.runs) or '-'}")
    if not dry_run:
        freed = (result.bytes_before - result.bytes_after) / 1e6
        _print(f"{result.rows} row(s), {len(result.reports)} report(s); {freed:.1f} MB freed")
    if result.kept_unfinished:
        _print(
            f"kept {len(result.kept_unfinished)} unfinished run(s) "
            f"(--include-unfinished to remove): {', '.join(result.kept_unfinished)}"
        )
    if result.branches:
        _print("their branches are yours to delete: " + " ".join(result.branches))
    return ExitCode.OK


@runs_app.command("export")
def export_command(
    run_id: Annotated[str, typer.Argument(help="The run (a unique prefix is enough).")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here.")] = None,
) -> ExitCode:
    """Every row of one run as JSON, redacted: what to keep of a run instead of karma.db."""
    from karma.report import load_run
    from karma.text.redact import redact_value

    store = _store()
    try:
        rid = load_run(store, run_id).run_id
        rows: dict[str, Any] = store.run_rows(rid)
    finally:
        store.close()
    text = json.dumps(
        {"format": "karma-run/1", "run_id": rid, "tables": redact_value(rows)},
        indent=2,
        default=str,
    )
    if output is None:
        _print(text, raw=True)
    else:
        output.write_text(text + "\n", encoding="utf-8")
        _print(str(output))
    return ExitCode.OK


@runs_app.command("import")
def import_command(
    file: Annotated[Path, typer.Argument(help="A `karma runs export` file.")],
) -> ExitCode:
    """Add an exported run to this repository's store, to continue it here (CI: a run
    record carried as an artifact); prints its id. The file is untrusted."""
    from karma.handover import import_record
    from karma.workspace import Workspace

    try:
        with file.open("rb") as f:
            raw = f.read(IMPORT_LIMIT + 1)
    except OSError as exc:
        raise UsageError(f"{file}: cannot read: {exc.strerror}") from None
    if len(raw) > IMPORT_LIMIT:
        raise UsageError(f"{file}: larger than {IMPORT_LIMIT // 2**20} MiB")
    try:
        data = json.loads(raw)
    except ValueError:
        raise UsageError(f"{file}: not JSON") from None
    from karma.store import Store

    store = Store(state.config().db_path(state.repo))
    try:
        run_id = import_record(store, data, Workspace(state.repo).root)
    finally:
        store.close()
    _print(run_id)
    return ExitCode.OK


IMPORT_LIMIT = 512 * 2**20
