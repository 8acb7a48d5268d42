"""The `karma` command: the typer app, its commands, and the one place errors become exits.

`main()` runs the app and catches what escapes a command: a `KarmaError` becomes one
line on stderr, a "Tip:", and the error's documented exit code (`--traceback` shows
the rest); Ctrl-C exits 130. The commands themselves live in the sibling modules.
"""

from __future__ import annotations

import gc
import sys
from typing import TYPE_CHECKING, Any

from karma.errors import ExitCode, KarmaError

if TYPE_CHECKING:
    from typer._click import Command, Context


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

    from karma.cli.app import app, state
    from karma.cli.group import root_command

    try:
        command = root_command(app)
        help_context = _help_context(command, args)
        if help_context is not None:
            sys.stdout.write(help_context.get_help() + "\n")
            return ExitCode.OK
        result = command.main(args=args, prog_name="karma", standalone_mode=False)
    except KarmaError as exc:
        from rich.text import Text

        from karma.cli.app import err_console
        from karma.text.inert import inert_lines

        if state.traceback:
            import traceback

            traceback.print_exc()
        # An error may quote model or tool text: redacted and inert, like any other output.
        err_console.print(Text.assemble(("error: ", "bold red"), inert_lines(str(exc))))
        if exc.tip:
            err_console.print(Text(f"Tip: {inert_lines(exc.tip)}"))
        return exc.exit_code
    except (typer.Abort, KeyboardInterrupt):
        from karma.cli.app import err_console

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


def _help_context(command: Command, args: list[str]) -> Context | None:
    """`karma [COMMAND...] --help`, nothing else: the asked command's context, made without
    parsing. Parsing would run the app's callback and coerce its options first (typer
    coerces through pydantic: its import is most of a command's start-up), and help
    depends on neither. Anything else (an option before `--help`, an argument, `--`)
    goes the ordinary way, and prints the same help."""
    if not args or args[-1] != "--help" or any(arg.startswith("-") for arg in args[:-1]):
        return None
    try:
        from typer._click import Context
    except ImportError:  # pragma: no cover - older typer on the real click
        from click import Context  # type: ignore[assignment]

    context = Context(command, info_name="karma", **command.context_settings)
    for name in args[:-1]:
        group = context.command
        sub = group.get_command(context, name) if hasattr(group, "get_command") else None
        if sub is None:
            return None
        context = Context(sub, info_name=name, parent=context, **sub.context_settings)
    return context


def _register() -> None:
    """Import every command module: each registers its commands on the app (a command
    run from the CLI loads its own alone, `karma.cli.commands`)."""
    import importlib

    from karma.cli.commands import COMMANDS

    for entry in COMMANDS.values():
        for module in entry.modules:
            importlib.import_module(module)


def __getattr__(name: str) -> Any:
    """`karma.cli.app` with every command registered, loaded on first use."""
    if name == "app":
        from karma.cli.app import app

        _register()
        globals()["app"] = app  # over the submodule the import just bound to this name
        return app
    raise AttributeError(name)


__all__ = ["app", "main"]
