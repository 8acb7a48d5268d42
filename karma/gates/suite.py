"""The one loader of `quality_gates/`: gate suites, semgrep rules and the review rubric.

A suite is a TOML file (`quality_gates/<name>.toml`): an `order` and one table per gate.
The built-in `default.toml` is also the schema: a gate accepts `enabled`, `blocking`,
`timeout_s` and exactly the keys `default.toml` gives it, so a typo in a project's
`gates.overrides` fails loudly and names the key. Suites, rules and the rubric come from
the command's trusted `DataRoots` (karma/home.py), never from the tree under check.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from karma.errors import ConfigError
from karma.gates.interface import GateSettings
from karma.home import DataRoots, builtin_dir
from karma.tomlfile import read_toml

COMMON_KEYS = frozenset({"enabled", "blocking", "timeout_s"})
KNOWN_GATES = ("secrets", "sast", "audit", "tests", "bench", "approval", "review")


@dataclass(frozen=True)
class Suite:
    name: str
    gates: tuple[GateSettings, ...]
    """Enabled gates, in order."""

    def only(self, names: tuple[str, ...]) -> Suite:
        unknown = [name for name in names if name not in KNOWN_GATES]
        if unknown:
            raise ConfigError(
                f"unknown gate {unknown[0]!r}", tip=f"gates are: {', '.join(KNOWN_GATES)}"
            )
        return Suite(self.name, tuple(g for g in self.gates if g.name in names))

    def settings(self, name: str) -> GateSettings | None:
        return next((g for g in self.gates if g.name == name), None)


def _find(roots: DataRoots | None, relative: str) -> Path:
    """`relative` in the most specific quality_gates/ that has it (a project may override
    one suite or the rubric without copying the whole folder)."""
    return (roots or DataRoots.trusted()).path("quality_gates", relative)


def semgrep_rules_dir(roots: DataRoots | None = None) -> Path:
    return _find(roots, "semgrep")


def review_rubric(roots: DataRoots | None = None) -> str:
    return _find(roots, "review/rubric.md").read_text(encoding="utf-8")


def _schema() -> dict[str, frozenset[str]]:
    data = read_toml(builtin_dir("quality_gates") / "default.toml")
    return {name: frozenset(table) | COMMON_KEYS for name, table in data["gates"].items()}


def _check_keys(where: str, gate: str, table: Mapping[str, Any], schema: Mapping[str, Any]) -> None:
    if gate not in schema:
        raise ConfigError(f"{where}: unknown gate {gate!r}", tip=f"gates are: {', '.join(schema)}")
    for key in table:
        if key not in schema[gate]:
            raise ConfigError(
                f"{where}: gates.{gate}.{key}: unknown key",
                tip=f"{gate} accepts: {', '.join(sorted(schema[gate]))}",
            )


def load_suite(
    name: str = "default",
    *,
    roots: DataRoots | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> Suite:
    """The suite `name` with the config's `gates.overrides` applied on top."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name) or ".." in name:
        raise ConfigError(f"gates.suite: {name!r} is not a suite name")
    path = _find(roots, f"{name}.toml")
    if not path.is_file():
        raise ConfigError(f"no gate suite {name!r} ({path} does not exist)")
    data = read_toml(path)
    schema = _schema()
    tables: dict[str, dict[str, Any]] = {}
    for gate, table in data.get("gates", {}).items():
        _check_keys(str(path), gate, table, schema)
        tables[gate] = dict(table)
    for gate, table in (overrides or {}).items():
        _check_keys("gates.overrides", gate, table, schema)
        tables[gate] = {**tables.get(gate, {}), **table}
    order = data.get("order", list(tables))
    for gate in order:
        if gate not in tables:
            raise ConfigError(f"{path}: order names {gate!r}, which has no [gates.{gate}] table")
    gates: list[GateSettings] = []
    for gate in order:
        table = tables[gate]
        if not table.get("enabled", True):
            continue
        options = {k: v for k, v in table.items() if k not in COMMON_KEYS}
        try:
            timeout = float(table.get("timeout_s", 300.0))
        except (TypeError, ValueError):
            raise ConfigError(f"gates.{gate}.timeout_s: not a number") from None
        gates.append(GateSettings(gate, bool(table.get("blocking", True)), timeout, options))
    return Suite(name, tuple(gates))
