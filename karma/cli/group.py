"""The root group of the `karma` command: every command listed, each built when used.

`karma --help` lists the commands from the table in `karma.cli.commands` without
importing a command module, and `karma build ...` imports `karma.cli.build` alone: a
command's module (and what it imports at its top) loads when the command is looked up,
and the command is then built from what that module registered on the app.
"""

from __future__ import annotations

import copy
import importlib
from collections.abc import Iterator, MutableMapping
from typing import Any

import typer
from typer.core import TyperGroup
from typer.models import CommandInfo

from karma.cli.commands import COMMANDS

try:  # typer >= 0.20 carries its own copy of click
    from typer._click import Command, Context, HelpFormatter
    from typer._click.utils import make_default_short_help
except ImportError:  # pragma: no cover - older typer on the real click
    from click import Command, Context, HelpFormatter  # type: ignore[assignment]
    from click.utils import make_default_short_help


class LazyGroup(TyperGroup):
    """Lists commands from the table, builds one when it is looked up; `source()` is the
    app the command modules register on (a subclass says which)."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self.commands = _Commands(self.commands, self.source())

    @staticmethod
    def source() -> typer.Typer:
        raise NotImplementedError

    def list_commands(self, ctx: Context) -> list[str]:
        return list(self.commands)  # the names: typer's own would build every command

    def format_commands(self, ctx: Context, formatter: HelpFormatter) -> None:
        """The commands' summaries, an unbuilt command's from the table (as its help has it)."""
        assert isinstance(self.commands, _Commands)
        built = self.commands.built
        shown = [name for name in self.commands if name not in built or not built[name].hidden]
        if not shown:
            return
        limit = formatter.width - 6 - max(map(len, shown))
        rows = [
            (name, built[name].get_short_help_str(limit) if name in built
             else make_default_short_help(COMMANDS[name].summary, limit).strip())
            for name in shown
        ]  # fmt: skip
        with formatter.section("Commands"):
            formatter.write_dl(rows)


class _Commands(MutableMapping[str, Command]):
    """The group's commands: the table's, each built when first looked up, then any
    registered by other means (a test's probe command)."""

    def __init__(self, built: MutableMapping[str, Command], app: typer.Typer) -> None:
        self.built = dict(built)
        self.app = app

    def __getitem__(self, name: str) -> Command:
        if name not in self.built and name in COMMANDS:
            self.built[name] = _load(self.app, name)
        return self.built[name]

    def __setitem__(self, name: str, command: Command) -> None:
        self.built[name] = command

    def __delitem__(self, name: str) -> None:
        del self.built[name]

    def __iter__(self) -> Iterator[str]:
        yield from COMMANDS
        yield from (name for name in self.built if name not in COMMANDS)

    def __len__(self) -> int:
        return len(COMMANDS.keys() | self.built.keys())


def root_command(app: typer.Typer) -> Command:
    """The app's click command, its table commands left to be built when looked up (a
    command module imported already has registered them on the app)."""
    shell = copy.copy(app)
    shell.registered_commands = [i for i in app.registered_commands if _named(i) not in COMMANDS]
    shell.registered_groups = [i for i in app.registered_groups if i.name not in COMMANDS]
    command = typer.main.get_command(shell)
    _plain_help(command)
    return command


def _load(app: typer.Typer, name: str) -> Command:
    """Import the command's modules (they register it on `app`) and build it alone."""
    for module in COMMANDS[name].modules:
        importlib.import_module(module)  # by name: a command module imports this one
    alone = typer.Typer(rich_markup_mode=None, add_completion=False)
    alone.callback()(_nothing)
    alone.registered_commands = [info for info in app.registered_commands if _named(info) == name]
    alone.registered_groups = [info for info in app.registered_groups if info.name == name]
    group = typer.main.get_command(alone)
    assert isinstance(group, TyperGroup)
    command = group.commands[name]
    _plain_help(command)
    return command


def _named(info: CommandInfo) -> str:
    """The name typer gives a registered command: its own, else its function's."""
    function = info.callback.__name__ if info.callback is not None else ""
    return info.name or typer.main.get_command_name(function)


def _nothing() -> None:
    """The callback of the throwaway group a command is built in (a group needs one)."""


def _plain_help(command: Command) -> None:
    """Plain help, at once: a flag takes no value, so its help shows none (typer prints
    `<bool>` beside every flag, `--help` included), and help is click's plain text, not
    rich panels (rendering those imports rich's markdown stack: about 4x `--help`'s time).
    A group's commands are done as they are built."""
    if hasattr(command, "rich_markup_mode"):
        command.rich_markup_mode = None
    for param in command.params:
        if getattr(param, "is_flag", False):
            param.metavar = ""
    help_option = command.get_help_option(Context(command, help_option_names=["--help"]))
    if help_option is not None:
        help_option.metavar = ""
    subcommands = getattr(command, "commands", {})
    built = subcommands.built if isinstance(subcommands, _Commands) else subcommands
    for sub in built.values():
        _plain_help(sub)
