"""Start-up stays cheap: what `karma --version` and `--help` import (structural, not timed).

Each probe runs in a fresh interpreter and lists the heavy modules found in `sys.modules`
after the command: the model SDKs, pydantic, networkx, docker, yaml and the plan module
load when a command needs them, never to print a version or a help text.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("anthropic", "openai", "pydantic", "networkx", "docker", "yaml", "httpx")
HEAVY_KARMA = ("karma.plan", "karma.planner", "karma.config", "karma.engine", "karma.store")

PROBE = f"""
import contextlib, io, json, sys
from karma.cli import main
with contextlib.redirect_stdout(io.StringIO()) as out:
    code = main(sys.argv[1:])
heavy = sorted(m for m in sys.modules if m.split(".")[0] in {HEAVY!r} or m in {HEAVY_KARMA!r})
print(json.dumps({{"code": code, "heavy": heavy, "out": out.getvalue(),
                  "typer": "typer" in sys.modules}}))
"""


def _probe(*args: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, check=True
    )
    result: dict[str, object] = json.loads(done.stdout.splitlines()[-1])
    return result


def test_version_loads_neither_typer_nor_anything_heavy() -> None:
    result = _probe("--version")
    assert result["code"] == 0
    assert str(result["out"]).startswith("karma ")
    assert result["heavy"] == []
    assert result["typer"] is False


@pytest.mark.parametrize("args", [("--help",), ("build", "--help"), ("plan", "--help")])
def test_help_registers_every_command_without_loading_their_work(args: tuple[str, ...]) -> None:
    result = _probe(*args)
    assert result["code"] == 0
    loaded = result["heavy"]
    assert isinstance(loaded, list)
    heavy = [m for m in loaded if not str(m).startswith("pydantic")]
    # typer >= 0.26 coerces option values through pydantic: that one is typer's own cost.
    assert heavy == []
    if args == ("--help",):
        assert result["heavy"] == []
        for command in ("build", "resume", "plan", "gate", "show", "runs", "setup"):
            assert f"  {command} " in str(result["out"])


def test_flags_show_no_value_in_help() -> None:
    text = str(_probe("build", "--help")["out"])
    assert "<bool>" not in text
    assert "--json " in text and "-j, --jobs <int>" in text
    assert "[tool.karma]" in text  # help text is not eaten as markup
