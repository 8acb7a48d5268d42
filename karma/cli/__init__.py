"""The `karma` command: the typer app, its commands, and the one place errors become exits.

`main()` runs the app and catches what escapes a command: a `KarmaError` becomes one
line on stderr, a "Tip:", and the error's documented exit code (`--traceback` shows
the rest); Ctrl-C exits 130. The commands themselves live in the sibling modules.
"""

from __future__ import annotations

import sys
import traceback

import typer
from rich.text import Text

from karma.ci import inert_lines
from karma.cli import (
    advisories,  # noqa: F401
    build,  # noqa: F401
    doctor,  # noqa: F401
    gate,  # noqa: F401
    heal,  # noqa: F401
    humans,  # noqa: F401
    plan,  # noqa: F401
    record,  # noqa: F401
    runs,  # noqa: F401
    setup,  # noqa: F401
)
from karma.cli.app import app, err_console, state
from karma.errors import ExitCode, KarmaError

try:  # typer >= 0.20 carries its own copy of click
    from typer._click.exceptions import ClickException
except ImportError:  # pragma: no cover - older typer on the real click
    from click import ClickException  # type: ignore[assignment]


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns (and, as a script, exits with) an `ExitCode`."""
    code = _run(sys.argv[1:] if argv is None else argv)
    if argv is None:
        sys.exit(int(code))
    return int(code)


def _run(args: list[str]) -> ExitCode | int:
    try:
        result = app(args=args, prog_name="karma", standalone_mode=False)
    except KarmaError as exc:
        if state.traceback:
            traceback.print_exc()
        # An error may quote model or tool text: redacted and inert, like any other output.
        err_console.print(Text.assemble(("error: ", "bold red"), inert_lines(str(exc))))
        if exc.tip:
            err_console.print(Text(f"Tip: {inert_lines(exc.tip)}"))
        return exc.exit_code
    except (typer.Abort, KeyboardInterrupt):
        err_console.print("interrupted")
        return ExitCode.INTERRUPTED
    except typer.Exit as exc:
        return int(exc.exit_code)
    except ClickException as exc:
        exc.show()
        return ExitCode.USAGE
    if isinstance(result, int):
        return result
    return ExitCode.OK


__all__ = ["app", "main"]
