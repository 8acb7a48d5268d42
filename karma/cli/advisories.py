"""`karma advisories serve DIR`: an offline OSV endpoint for pip-audit, on loopback."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from karma.cli.app import app, err_console, out
from karma.errors import ExitCode

advisories_app = typer.Typer(help="Offline vulnerability advisories.", no_args_is_help=True)
app.add_typer(advisories_app, name="advisories")


@advisories_app.command("serve")
def serve(
    folder: Annotated[
        Path, typer.Argument(help="An OSV-format folder (e.g. the PyPA advisory database).")
    ],
    port: Annotated[int, typer.Option("--port", help="Port on 127.0.0.1 (0: any free one).")] = 0,
) -> ExitCode:
    """Answer OSV queries (POST /v1/query, /v1/querybatch) from FOLDER until Ctrl-C."""
    from karma.advisories import make_server

    server = make_server(folder, port)
    out.print(server.url, markup=False, highlight=False)
    err_console.print(
        f"serving {server.httpd.index.packages} packages from {folder}; "
        f"set KARMA_OSV_URL={server.url} (Ctrl-C stops)",
        markup=False,
        highlight=False,
    )
    try:
        server.httpd.serve_forever()
    except KeyboardInterrupt:
        err_console.print("stopped")
    finally:
        server.httpd.server_close()
    return ExitCode.OK
