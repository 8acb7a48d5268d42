"""Start-up stays cheap: what `karma --version` and `--help` import (structural, not timed).

Each probe runs in a fresh interpreter and lists the heavy modules found in `sys.modules`
after the command: the model SDKs, pydantic, networkx, docker, git, yaml, rich and the
plan module load when a command needs them, never to print a version or a help text; a
command's help loads that command's module, no other's. bench/bench_startup.py times it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from karma.cli.commands import COMMANDS

HEAVY = ("anthropic", "openai", "pydantic", "networkx", "docker", "git", "yaml", "httpx", "rich")
HEAVY_KARMA = ("karma.plan", "karma.planner", "karma.config", "karma.engine", "karma.store")
SHELL = {"karma", "karma.cli", "karma.cli.app", "karma.cli.commands", "karma.cli.group"}

PROBE = f"""
import contextlib, io, json, sys
from karma.cli import main
with contextlib.redirect_stdout(io.StringIO()) as out:
    code = main(sys.argv[1:])
heavy = sorted(m for m in sys.modules if m.split(".")[0] in {HEAVY!r} or m in {HEAVY_KARMA!r})
karma = sorted(m for m in sys.modules if m.startswith("karma."))
print(json.dumps({{"code": code, "heavy": heavy, "out": out.getvalue(), "karma": karma,
                  "typer": "typer" in sys.modules}}))
"""


def _probe(*args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, check=True
    )
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


def test_version_loads_neither_typer_nor_anything_heavy() -> None:
    result = _probe("--version")
    assert result["code"] == 0
    assert str(result["out"]).startswith("karma ")
    assert result["heavy"] == []
    assert result["typer"] is False


def test_help_lists_every_command_and_loads_no_command_module() -> None:
    result = _probe("--help")
    assert result["code"] == 0
    assert result["heavy"] == []
    assert set(result["karma"]) <= SHELL | {"karma.errors"}
    for command in COMMANDS:
        assert f"\n  {command} " in str(result["out"])


@pytest.mark.parametrize(
    "args", [(name, "--help") for name in COMMANDS] + [("runs", "prune", "--help")]
)
def test_a_command_help_loads_its_own_module_and_nothing_heavy(args: tuple[str, ...]) -> None:
    result = _probe(*args)
    assert result["code"] == 0
    assert str(result["out"]).startswith(f"Usage: karma {' '.join(args[:-1])} ")
    assert result["heavy"] == []  # pydantic too: the app's options are not parsed for help
    loaded = {m for m in result["karma"] if m.startswith("karma.cli.")} - SHELL
    own = set(COMMANDS[args[0]].modules)
    assert own <= loaded
    # A command module may import a sibling it shares code with, not the whole CLI.
    assert len(loaded) <= len(own) + 1, loaded


def test_flags_show_no_value_in_help() -> None:
    text = str(_probe("build", "--help")["out"])
    assert "<bool>" not in text
    assert "--json " in text and "-j, --jobs <int>" in text
    assert "[tool.karma]" in text  # help text is not eaten as markup


def test_the_consoles_are_made_on_first_use_and_are_rich_consoles_then() -> None:
    code = (
        "import sys\n"
        "from karma.cli.app import err_console, out\n"
        "before = 'rich' in sys.modules\n"
        "held = err_console\n"
        "width = err_console.width\n"
        "from rich.console import Console\n"
        "assert held is err_console and isinstance(held, Console) and held.stderr\n"
        "assert not isinstance(out, Console)  # untouched: still to be made\n"
        "out.print('[bold]x[/bold]', 'y')\n"
        "assert isinstance(out, Console) and not out.stderr and out.soft_wrap\n"
        "print(before)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.splitlines() == ["x y", "False"]
