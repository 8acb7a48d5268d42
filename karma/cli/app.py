"""The typer application and what every command shares: global options and the config.

Commands live one module per concern beside this one and only parse, build config,
call into the engine and map the outcome to an `ExitCode`. Results go to stdout;
progress, logs and errors to stderr (`err_console`).

The app's group loads a command's module when the command is used (`karma.cli.group`),
so start-up costs typer and the one command asked for; `out` and `err_console` become
rich Consoles when first used.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from karma import __version__
from karma.cli.group import LazyGroup

if TYPE_CHECKING:  # the config loads pydantic: only when a command asks for it
    from rich.console import Console

    from karma.config import KarmaConfig, RepoText


class _FirstUse:
    """A `Console` to be: on first use, rich is imported and this object becomes the
    Console (its class and state), so what holds it holds a real one from then on."""

    def __init__(self, **options: Any) -> None:
        self._console_options = options

    def __getattr__(self, name: str) -> Any:  # only for what this object has not (yet)
        from rich.console import Console

        with _first_use:
            if not isinstance(self, Console):  # another thread may have made it meanwhile
                options = self.__dict__.pop("_console_options")
                self.__class__ = Console  # type: ignore[assignment]
                Console.__init__(self, **options)  # type: ignore[arg-type]
        return getattr(self, name)


_first_use = threading.Lock()


out: Console = _FirstUse(soft_wrap=True)  # type: ignore[assignment]
"""Results and `--json` (stdout)."""
err_console: Console = _FirstUse(stderr=True)  # type: ignore[assignment]
"""Progress, logs and errors (stderr)."""


class _Group(LazyGroup):
    @staticmethod
    def source() -> typer.Typer:
        return app


app = typer.Typer(
    name="karma",
    help="KARMA: turn a feature request into tested, reviewed code on a new branch.",
    cls=_Group,
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)


@dataclass
class State:
    """Global options, set by the app callback before any command runs."""

    repo: Path = field(default_factory=Path.cwd)
    config_file: Path | None = None
    db: Path | None = None
    traceback: bool = False
    trust_repo_config: bool = False
    """`--trust-repo-config`: the repository's own config may set trusted-only keys."""

    def config(self, **flags: Any) -> KarmaConfig:
        """The merged config; `flags` are dotted keys (`"build.jobs"`) from the command line."""
        return self.config_from(None, **flags)

    def config_from(self, repo_text: tuple[str, RepoText] | None, **flags: Any) -> KarmaConfig:
        """The merged config, the repository's own files read by `repo_text` (a gate reads
        them from the base commit: the working tree is the change under check)."""
        from karma.config import load_config

        if self.db is not None:
            flags.setdefault("store.db", self.db)
        if self.trust_repo_config:
            flags["trust_repo_config"] = True
        return load_config(
            self.repo,
            flags=flags,
            config_file=self.config_file,
            warn=_warn_line,
            repo_text=repo_text,
        )

    def trust(self, value: bool) -> None:
        """A command's own `--trust-repo-config` (the global one is set already)."""
        self.trust_repo_config = self.trust_repo_config or value


def _warn_line(line: str) -> None:
    err_console.print(line, markup=False, highlight=False)


state = State()

TRUST_HELP = (
    "Take security-relevant keys (base_url, env_allowlist, gate overrides...) from the "
    "repository's karma.toml / [tool.karma] too."
)
TrustRepoConfig = Annotated[bool, typer.Option("--trust-repo-config", help=TRUST_HELP)]


def _version(value: bool) -> None:
    if value:
        out.print(f"karma {__version__}")
        raise typer.Exit()


@app.callback()
def _global(
    repo: Annotated[
        Path, typer.Option("--repo", "-C", help="The repository to work on.", show_default=False)
    ] = Path(),
    config: Annotated[
        Path | None, typer.Option("--config", help="A karma.toml to use instead of the repo's.")
    ] = None,
    db: Annotated[
        Path | None,
        typer.Option("--db", envvar="KARMA_DB", help="The run store (default .karma/karma.db)."),
    ] = None,
    traceback: Annotated[
        bool, typer.Option("--traceback", help="Show the full traceback of an error.")
    ] = False,
    trust_repo_config: TrustRepoConfig = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    state.repo = repo.resolve()
    state.config_file = config
    state.db = db
    state.traceback = traceback or bool(os.environ.get("KARMA_TRACEBACK"))
    state.trust_repo_config = trust_repo_config
