"""`karma setup`: get this machine ready (Docker engine, base image); exit 0 ready, 3 not.

Its result on stdout is the base image's name (or, with `--json`, the steps), so that
scripts can say `KARMA_BASE_IMAGE=$(karma setup)`; the steps go to stderr as they happen.
"""

from __future__ import annotations

import json
import time
from typing import Annotated

import typer

from karma.cli.app import app, err_console, out, state
from karma.errors import ExitCode, KarmaError


@app.command()
def setup(
    as_json: Annotated[bool, typer.Option("--json", help="Print the steps as JSON.")] = False,
) -> ExitCode:
    """Make sure of a Docker engine and the base image: as root, install and start them."""
    from rich.text import Text

    from karma.machine import Readiness, get_ready

    config = state.config()
    progress = Readiness(say=lambda line: err_console.print(Text(f"setup: {line}"), soft_wrap=True))
    try:
        get_ready(config, progress)
    except KarmaError as exc:
        if as_json:
            out.print_json(json.dumps(progress.to_json(exc)))
        raise
    if as_json:
        out.print_json(json.dumps(progress.to_json()))
    else:  # the result alone on stdout, for `KARMA_BASE_IMAGE=$(karma setup)`
        seconds = time.monotonic() - progress.started
        err_console.print(Text(f"setup: ready in {seconds:.1f} s"), soft_wrap=True)
        out.print(progress.base_image, markup=False, highlight=False)
    return ExitCode.OK
