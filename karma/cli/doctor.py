"""`karma doctor`: print the machine's readiness checks; exit 0 healthy, 2 bad config, 3 else."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from karma.cli.app import app, out, state
from karma.errors import ExitCode

_MARK = {"ok": "[green]ok[/]", "warn": "[yellow]warn[/]", "fail": "[bold red]FAIL[/]"}


@app.command()
def doctor(
    online: Annotated[
        bool, typer.Option("--online", help="Also send one request to each provider's URL.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the checks as JSON.")] = False,
) -> ExitCode:
    """Check Docker, the base image, tools, model keys and the configuration."""
    from rich.table import Table

    from karma.doctor import diagnose

    diagnosis = diagnose(state.repo, config_file=state.config_file, online=online)
    if as_json:
        out.print_json(json.dumps(diagnosis.to_json()))
        return diagnosis.exit_code
    from rich.text import Text

    table = Table(box=None, show_header=False, pad_edge=False)
    for check in diagnosis.checks:
        # A detail may quote a project's file (`[testenv]`): plain text, never markup.
        table.add_row(_MARK[check.status], check.name, Text(check.detail))
        if check.fix and check.status != "ok":
            table.add_row("", "", f"[dim]fix:[/] {check.fix}")
    out.print(table)
    verdict = {
        ExitCode.OK: "[green]healthy[/]",
        ExitCode.USAGE: "[bold red]the configuration is invalid[/]",
    }.get(diagnosis.exit_code, "[bold red]this machine cannot build yet[/]")
    out.print(verdict)
    return diagnosis.exit_code
