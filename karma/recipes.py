"""The one loader of `recipes/`: stacks, the price table and the failure patterns.

Recipe files are data a team may edit, so each is validated with pydantic
(`extra="forbid"`) and a malformed one is a `RecipeError` naming the file and the key.
Every loader reads from the command's trusted `DataRoots` (karma/home.py), never from
the tree under check: a stack's `test_command` runs, so it must not come from a change.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from karma.errors import RecipeError
from karma.home import DataRoots, builtin_dir
from karma.tomlfile import read_toml


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


def recipe_path(relative: str, roots: DataRoots | None = None) -> Path:
    return (roots or DataRoots.trusted()).path("recipes", relative)


# -- prices -----------------------------------------------------------------------------


class Price(_Recipe):
    """USD per million tokens."""

    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cache_read: float = Field(0.0, ge=0)
    cache_write: float = Field(0.0, ge=0)
    context_window: int | None = Field(None, ge=1000)
    """Tokens the model reads at most (prompt and tools included); None: not known. From
    the trusted data roots only, like every recipe."""


class PriceTable(_Recipe):
    updated: dt.date
    models: dict[str, Price]

    def price(self, model: str) -> Price | None:
        return self.models.get(model)


@lru_cache(maxsize=4)
def load_prices(path: Path | None = None) -> PriceTable:
    path = path or recipe_path("prices.toml")
    return _validate(PriceTable, read_toml(path, RecipeError), path)


# -- stacks -----------------------------------------------------------------------------


class Check(_Recipe):
    name: str
    step: Literal["install", "build", "test", "lint", "typecheck"]
    command: str
    when: Literal["always", "files"] = "always"
    """`files`: only when the task changed files matching the stack's source globs."""
    covered_by: str = ""
    """A regex on the project's own test script at the base commit (a `package.json`
    stack's `test`): when it matches, running that script already does this check
    (`tsc && node --test` compiles), so a task's checks do not run it a second time."""

    @field_validator("covered_by")
    @classmethod
    def _regex(cls, value: str) -> str:
        return _compiles((value,))[0] if value else value


class TestReport(_Recipe):
    """How the tests gate reads a suite that writes no JUnit report: regexes (Python,
    multiline) on the test command's output. One with a group sums the numbers it
    captures (`test result: ok. 3 passed`); one without counts its matches (one event a
    test)."""

    __test__ = False  # not a pytest class, whatever its name

    passed: str
    failed: str
    skipped: str = ""
    listing: str = ""
    """A command that lists the suite's tests without running them (on head and base:
    the head may not have fewer); empty: none."""
    listed: str = ""
    """A regex matching one test in the listing's output, group 1 its name."""
    skip_markers: tuple[str, ...] = ()
    """Regexes: an added line of a changed source file that matches one is a new skip."""

    @field_validator("passed", "failed", "skipped", "listed")
    @classmethod
    def _regex(cls, value: str) -> str:
        return _compiles((value,))[0]

    @field_validator("skip_markers")
    @classmethod
    def _regexes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _compiles(value)


class Stack(_Recipe):
    name: str
    detect: tuple[str, ...]
    order: int = 100
    """Stacks are tried lowest first (then by name): a repository that has the markers of
    two stacks is the first one's."""
    dependency_files: tuple[str, ...] = ()
    installer: Literal["pip", "npm", "none"] = "pip"
    """How the image build fetches the dependencies: `pip` (karma/sandbox/wheelhouse.py),
    `npm` (karma/sandbox/npm.py) or `none` (no download: what a project needs is vendored
    in its tree, as Go's `vendor/` and Cargo's vendored sources are)."""
    sandbox: str
    generated: tuple[str, ...] = ()
    """gitignore patterns of what builds and checks leave behind; never committed."""
    source_globs: tuple[str, ...] = ("*",)
    test_globs: tuple[str, ...] = ()
    test_command: str
    test_report: TestReport | None = None
    """How the tests gate counts `test_command`'s tests when it writes no JUnit report."""
    test_config: Literal["python", "package.json", "none"] = "python"
    """Where the tests gate reads the project's own test command at the base commit:
    `python` (tox, nox, pytest configuration: karma/testcommand.py), `package.json` (its
    `test` script: karma/nodecommand.py) or `none` (`test_command` as it is)."""
    junit_command: str = ""
    """The whole suite with a JUnit report written to `{junit}`, which the tests gate
    counts (failures, skips, fewer tests than the base); "": the project's command, judged
    by its exit code (a pytest command gets `--junitxml` whatever this says)."""
    checks: tuple[Check, ...] = ()

    def is_source(self, path: str) -> bool:
        name = Path(path).name
        return any(fnmatch.fnmatch(name, glob) for glob in self.source_globs)

    def is_test(self, path: str) -> bool:
        name = Path(path).name
        return any(fnmatch.fnmatch(name, glob) for glob in self.test_globs)


def load_stacks(roots: DataRoots | None = None) -> list[Stack]:
    folder = recipe_path("stacks", roots)
    stacks = [
        _validate(Stack, read_toml(path, RecipeError), path)
        for path in sorted(folder.glob("*.toml"))
    ]
    return sorted(stacks, key=lambda stack: (stack.order, stack.name))


def detect_stack(
    repo: Path, roots: DataRoots | None = None, *, names: list[str] | None = None
) -> Stack | None:
    """The first stack whose marker files exist at the root of `repo` (or among `names`,
    the root of a commit: a gate detects the stack of its base, not of the change)."""
    if names is None:
        names = [p.name for p in repo.iterdir()] if repo.is_dir() else []
    present = names
    for stack in load_stacks(roots):
        if any(fnmatch.filter(present, marker) for marker in stack.detect):
            return stack
    return None


# -- failure patterns -------------------------------------------------------------------

FailureClass = Literal[
    "type_error", "syntax_error", "import_error", "dependency_resolution", "network_error",
    "out_of_memory", "test_failure", "flaky_test", "timeout", "lint_error", "compile_error",
    "disk_full", "permission_denied", "missing_tool", "unknown",
]  # fmt: skip
RemediationName = Literal[
    "retry_with_hint", "rerun_failed_tests", "fresh_sandbox",
    "raise_memory", "raise_timeout", "escalate_model", "regenerate_lockfile",
    "reinstall_dependencies", "quarantine_flaky_test",
    "edit_ci_workflow", "edit_auth", "edit_migration", "lower_gate",
]  # fmt: skip
StepName = Literal["install", "build", "test", "lint", "typecheck", "agent"]


def _compiles(patterns: tuple[str, ...]) -> tuple[str, ...]:
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"bad regex {pattern!r}: {exc}") from None
    return patterns


class Matcher(_Recipe):
    """When a pattern applies: regexes on the output and conditions on how it ended."""

    output: tuple[str, ...] = ()
    """Regexes (Python, multiline): at least one must match, unless there are none."""
    all: tuple[str, ...] = ()
    """Regexes that must all match as well."""
    exclude: tuple[str, ...] = ()
    """Regexes none of which may match."""
    exit_codes: tuple[int, ...] = ()
    """The exit code must be one of these (empty: any)."""
    limit: Literal["timeout", "memory", "pids"] | None = None
    """The sandbox limit that must have stopped the command."""
    steps: tuple[StepName, ...] = ()
    """Steps this pattern is typical of: a match there raises the score (never required)."""
    tools: tuple[str, ...] = ()
    """Tools this pattern is typical of: a match raises the score (never required)."""

    @field_validator("output", "all", "exclude")
    @classmethod
    def _regexes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _compiles(value)


class RemediationSpec(_Recipe):
    name: RemediationName
    prior: float = Field(0.5, ge=0, le=1)
    """Prior success rate, before this repository's outcomes are known."""
    weight: float = Field(2.0, gt=0)
    """How many observed outcomes the prior is worth."""
    proposal: str | None = None
    """For critical remediations: the change proposed to a human."""


class FailurePattern(_Recipe):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    klass: FailureClass = Field(alias="class")
    description: str = ""
    confidence: float = Field(0.8, gt=0, le=1)
    """How sure a match makes the classifier (before ambiguity with other patterns)."""
    match: Matcher = Matcher()
    specialises: tuple[FailureClass, ...] = ()
    """Classes this pattern is a special case of (a flaky test is also a failed test):
    their patterns matching as well is expected, not ambiguity."""
    hint: str
    """Told to the next attempt by retry_with_hint."""
    prevention: str | None = None
    """Told to first attempts on files or task kinds that failed this way before."""
    remediations: tuple[RemediationSpec, ...] = Field(min_length=1)
    source: str = ""
    """The file the pattern was loaded from (set by the loader)."""


class PatternFile(_Recipe):
    patterns: tuple[FailurePattern, ...]


def _yaml(path: Path) -> Any:
    import yaml

    try:
        # libyaml's safe loader when built in: the same documents, several times faster.
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        return yaml.load(path.read_text(encoding="utf-8"), Loader=loader)  # noqa: S506 (safe)
    except (yaml.YAMLError, OSError, UnicodeDecodeError) as exc:
        raise RecipeError(f"{path}: malformed YAML: {exc}") from None


def failure_pattern_files(roots: DataRoots | None = None) -> list[Path]:
    """The seed table, then learned patterns: built-in, then the project's own.

    A project's `.karma/recipes/` may hold only `learned/`: the seed table then comes
    from the next place that has one (KARMA_HOME, then the built-in copy).
    """
    roots = roots or DataRoots.trusted()
    seeds = recipe_path("failures", roots)
    folders = [seeds, recipe_path("learned", roots), builtin_dir("recipes") / "learned"]
    folders += [folder / "learned" for folder in roots.folders("recipes")]
    unique = list(dict.fromkeys(folder.resolve() for folder in folders))
    return [path for folder in unique for path in sorted(folder.glob("*.yaml"))]


def load_failure_patterns(
    roots: DataRoots | None = None, *, files: list[Path] | None = None
) -> list[FailurePattern]:
    """Every failure pattern; a malformed file or a duplicate id is a `RecipeError`."""
    patterns: list[FailurePattern] = []
    origin: dict[str, Path] = {}
    for path in files if files is not None else failure_pattern_files(roots):
        data = _yaml(path)
        if data is None:
            continue
        table = _validate(PatternFile, data, path)
        for index, pattern in enumerate(table.patterns):
            if pattern.id in origin:
                raise RecipeError(
                    f"{path}: patterns.{index}.id: {pattern.id!r} is already defined in "
                    f"{origin[pattern.id]}"
                )
            origin[pattern.id] = path
            patterns.append(pattern.model_copy(update={"source": str(path)}))
    if not any(p.klass == "unknown" and not p.match.output for p in patterns):
        raise RecipeError(
            f"{recipe_path('failures', roots)}: no fallback pattern of class 'unknown' "
            "without output matchers"
        )
    return patterns
