"""The `karma` command: the typer app, its commands, and the one place errors become exits.

`main()` runs the app and catches what escapes a command: a `KarmaError` becomes one
line on stderr, a "Tip:", and the error's documented exit code (`--traceback` shows
the rest); Ctrl-C exits 130. The commands themselves live in the sibling modules.
"""

from __future__ import annotations

import gc
import sys
import traceback
from typing import TYPE_CHECKING, Any

from karma.errors import ExitCode, KarmaError

if TYPE_CHECKING:
    from typer._click import Command


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns (and, as a script, exits with) an `ExitCode`."""
    code = _run(sys.argv[1:] if argv is None else argv)
    if argv is None:
        # The work is done: the collector need not walk the heap (the SDKs' thousands of
        # model classes) once more on the way out. Frozen, the exit takes 0.04 s instead
        # of 0.8 s; atexit handlers and the streams' flushes run as ever.
        gc.freeze()
        sys.exit(int(code))
    return int(code)


def _run(args: list[str]) -> ExitCode | int:
    if args == ["--version"]:  # the one answer that needs no command: no typer, no rich
        from karma import __version__

        sys.stdout.write(f"karma {__version__}\n")
        return ExitCode.OK
    import typer

    try:  # typer >= 0.20 carries its own copy of click
        from typer._click.exceptions import ClickException
    except ImportError:  # pragma: no cover - older typer on the real click
        from click import ClickException  # type: ignore[assignment]

    from karma.cli.app import app, err_console, state

    _register()
    try:
        command = typer.main.get_command(app)
        _plain_flags(command)
        result = command.main(args=args, prog_name="karma", standalone_mode=False)
    except KarmaError as exc:
        from rich.text import Text

        from karma.text.inert import inert_lines

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


def _register() -> None:
    """Import the command modules: each registers its commands on the app. Their top level
    imports only typer and `karma.cli.app`; what a command needs loads when it runs."""
    from karma.cli import (  # noqa: F401
        advisories,
        build,
        doctor,
        gate,
        heal,
        humans,
        plan,
        record,
        runs,
        setup,
    )


def _plain_flags(command: Command) -> None:
    """Plain help, at once: a flag takes no value, so its help shows none (typer prints
    `<bool>` beside every flag, `--help` included), and help is click's plain text, not
    rich panels (rendering those imports rich's markdown stack: about 4x `--help`'s time)."""
    if hasattr(command, "rich_markup_mode"):
        command.rich_markup_mode = None
    try:
        from typer._click import Context
    except ImportError:  # pragma: no cover - older typer on the real click
        from click import Context  # type: ignore[assignment]

    for param in command.params:
        if getattr(param, "is_flag", False):
            param.metavar = ""
    help_option = command.get_help_option(Context(command, help_option_names=["--help"]))
    if help_option is not None:
        help_option.metavar = ""
    subcommands: dict[str, Command] = getattr(command, "commands", {})
    for sub in subcommands.values():
        _plain_flags(sub)


def __getattr__(name: str) -> Any:
    """`karma.cli.app` with every command registered, loaded on first use."""
    if name == "app":
        from karma.cli.app import app

        _register()
        globals()["app"] = app  # over the submodule the import just bound to this name
        return app
    raise AttributeError(name)


__all__ = ["app", "main"]
