"""The typer application and what every command shares: global options and the config.

Commands live one module per concern beside this one and only parse, build config,
call into the engine and map the outcome to an `ExitCode`. Results go to stdout;
progress, logs and errors to stderr (`err_console`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from karma import __version__

if TYPE_CHECKING:  # the config loads pydantic: only when a command asks for it
    from karma.config import KarmaConfig, RepoText

app = typer.Typer(
    name="karma",
    help="KARMA: turn a feature request into tested, reviewed code on a new branch.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)

out = Console(soft_wrap=True)
"""Results and `--json` (stdout)."""
err_console = Console(stderr=True)
"""Progress, logs and errors (stderr)."""


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
