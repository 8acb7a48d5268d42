"""The one TOML reader: config files, gate suites and recipes are read and refused here.

A file that cannot be read or is not TOML raises the caller's error type (`ConfigError`
for configuration and suites, `RecipeError` for recipes) naming the file, so a typo
fails loudly with the path.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from karma.errors import ConfigError, KarmaError


def parse_toml(name: str, text: str, error: type[KarmaError] = ConfigError) -> dict[str, Any]:
    """`text` (from `name`) as a table; `error` when it is not TOML."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{name}: malformed TOML: {exc}") from None


def read_toml(path: Path, error: type[KarmaError] = ConfigError) -> dict[str, Any]:
    """The TOML file at `path` as a table; `error` when it cannot be read or is not TOML."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise error(f"{path}: cannot read: {exc.strerror}") from None
    return parse_toml(str(path), text, error)
