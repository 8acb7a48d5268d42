"""The one loader of `recipes/`: stacks, the price table and the failure patterns.

Recipe files are data a team may edit, so each is validated with pydantic
(`extra="forbid"`) and a malformed one is a `RecipeError` naming the file and the key.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from karma.errors import RecipeError
from karma.home import data_dir


class _Recipe(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


M = TypeVar("M", bound="_Recipe")


def _validate(model: type[M], data: Any, path: Path) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        key = ".".join(str(part) for part in error["loc"]) or "(top level)"
        message = "unknown key" if error["type"] == "extra_forbidden" else error["msg"]
        raise RecipeError(f"{path}: {key}: {message}") from None


def _toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, OSError) as exc:
        raise RecipeError(f"{path}: {exc}") from None


def recipes_dir(repo: Path | None = None) -> Path:
    return data_dir("recipes", repo=repo)


# -- prices -----------------------------------------------------------------------------


class Price(_Recipe):
    """USD per million tokens."""

    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cache_read: float = Field(0.0, ge=0)
    cache_write: float = Field(0.0, ge=0)


class PriceTable(_Recipe):
    updated: dt.date
    models: dict[str, Price]

    def price(self, model: str) -> Price | None:
        return self.models.get(model)


@lru_cache(maxsize=4)
def load_prices(path: Path | None = None) -> PriceTable:
    path = path or recipes_dir() / "prices.toml"
    return _validate(PriceTable, _toml(path), path)


# -- stacks -----------------------------------------------------------------------------


class Check(_Recipe):
    name: str
    step: Literal["install", "build", "test", "lint", "typecheck"]
    command: str
    when: Literal["always", "files"] = "always"
    """`files`: only when the task changed files matching the stack's source globs."""


class Stack(_Recipe):
    name: str
    detect: tuple[str, ...]
    dependency_files: tuple[str, ...] = ()
    sandbox: str
    source_globs: tuple[str, ...] = ("*",)
    test_globs: tuple[str, ...] = ()
    test_command: str
    checks: tuple[Check, ...] = ()

    def is_source(self, path: str) -> bool:
        name = Path(path).name
        return any(fnmatch.fnmatch(name, glob) for glob in self.source_globs)

    def is_test(self, path: str) -> bool:
        name = Path(path).name
        return any(fnmatch.fnmatch(name, glob) for glob in self.test_globs)


def load_stacks(repo: Path | None = None) -> list[Stack]:
    folder = recipes_dir(repo) / "stacks"
    return [_validate(Stack, _toml(path), path) for path in sorted(folder.glob("*.toml"))]


def detect_stack(repo: Path) -> Stack | None:
    """The first stack whose marker files exist at the root of `repo`."""
    for stack in load_stacks(repo):
        if any(any(repo.glob(marker)) for marker in stack.detect):
            return stack
    return None
