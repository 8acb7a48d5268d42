"""The command table (`karma.cli.commands`) says what the command modules register, and
the help a user reads is whole: every command listed with its own summary, every option
of every command in its help, the same help whichever way it is asked for."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Mapping

import pytest
import typer
from typer._click import Command, Context
from typer._click.utils import make_default_short_help

import karma.cli
from karma.cli import main
from karma.cli.app import app
from karma.cli.commands import COMMANDS
from karma.cli.group import root_command


def _all_registered() -> dict[str, set[str]]:
    """Each name registered on the app once every module in karma/cli is imported, with
    the modules whose functions it runs."""
    for module in pkgutil.iter_modules(karma.cli.__path__, "karma.cli."):
        importlib.import_module(module.name)
    found: dict[str, set[str]] = {}
    for info in app.registered_commands:
        assert info.callback is not None
        name = info.name or typer.main.get_command_name(info.callback.__name__)
        found.setdefault(name, set()).add(info.callback.__module__)
    for group in app.registered_groups:
        sub = group.typer_instance
        assert group.name is not None and sub is not None
        callbacks = [c.callback for c in sub.registered_commands]
        if sub.registered_callback is not None:
            callbacks.append(sub.registered_callback.callback)
        found.setdefault(group.name, set()).update(c.__module__ for c in callbacks if c)
    return found


def test_the_table_lists_every_registered_command_with_the_modules_that_register_it() -> None:
    registered = _all_registered()
    assert sorted(registered) == sorted(COMMANDS)
    for name, modules in registered.items():
        assert modules <= set(COMMANDS[name].modules), name


def _subcommands(command: Command) -> Mapping[str, Command]:
    commands: Mapping[str, Command] = getattr(command, "commands", {})
    return commands


def _tree() -> list[tuple[tuple[str, ...], Command]]:
    """Every command path under `karma`, built, with its command."""
    paths: list[tuple[tuple[str, ...], Command]] = []
    pending: list[tuple[tuple[str, ...], Command]] = [((), root_command(app))]
    while pending:
        path, command = pending.pop(0)
        paths.append((path, command))
        subcommands = _subcommands(command)
        pending.extend(((*path, name), subcommands[name]) for name in list(subcommands))
    return paths


@pytest.mark.parametrize("name", list(COMMANDS))
def test_each_summary_is_the_first_sentence_of_the_command_help(name: str) -> None:
    command = _subcommands(root_command(app))[name]
    assert command.help, name
    assert make_default_short_help(command.help, 10**4) == COMMANDS[name].summary


def test_the_listing_from_the_table_is_the_listing_of_the_built_commands() -> None:
    root = root_command(app)
    from_table = root.get_help(Context(root, info_name="karma"))
    for name in COMMANDS:
        _subcommands(root)[name]
    assert root.get_help(Context(root, info_name="karma")) == from_table
    for name in COMMANDS:
        assert f"\n  {name} " in from_table


def test_every_command_help_lists_its_options_the_same_whichever_way_asked(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for path, command in _tree():
        assert main([*path, "--help"]) == 0
        fast = capsys.readouterr().out
        # An option before the command: the app's options are parsed, the ordinary way.
        assert main(["--repo", ".", *path, "--help"]) == 0
        assert capsys.readouterr().out == fast, path
        assert fast.startswith(f"Usage: {' '.join(('karma', *path))} "), path
        assert "<bool>" not in fast, path
        for param in command.params:
            for opt in (*param.opts, *param.secondary_opts):
                if param.param_type_name == "argument":
                    opt = opt.lower()
                assert opt in fast, (path, opt)
        assert "--help" in fast


def test_a_mistyped_command_is_named_with_a_suggestion(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["biuld"]) == 2
    assert "No such command 'biuld'. Did you mean 'build'?" in capsys.readouterr().err
    assert main(["runs", "prnue"]) == 2
    assert "Did you mean 'prune'?" in capsys.readouterr().err
