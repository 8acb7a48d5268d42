"""`karma gate`: run the gate suite on the working tree against a base; exit 0 or 1.

Usable in any project's CI for human-written changes too. The result goes to stdout in
the chosen format; each gate's one-line outcome goes to stderr as it finishes. The
working tree is the change under check (a pull request's head), so the suite, rules,
rubric, stack and sandbox recipe come from the base commit's `.karma/` (read from git
objects), `KARMA_HOME` or the built-in copy, and the stack is detected on the base.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from karma.cli.app import TrustRepoConfig, app, err_console, out, state
from karma.errors import ExitCode, UsageError

if TYPE_CHECKING:  # the gates, the config and the recipes load at the command, not at start
    from karma.config import KarmaConfig
    from karma.gates import GateResult
    from karma.home import DataRoots
    from karma.layout import StackLayout
    from karma.sandbox.interface import Sandbox, SandboxSpec


def _config(base: str) -> KarmaConfig:
    """The config, with the repository's own files (karma.toml, [tool.karma]) as they are
    at the base: a change never configures the gates that judge it."""
    from karma.config import KarmaConfig, env_layer
    from karma.errors import ConfigError
    from karma.home import commit_text

    repo = state.repo
    try:
        return state.config_from((base[:12], lambda rel: commit_text(repo, base, rel)))
    except ConfigError as exc:
        # A broken pyproject.toml is a finding about the project, not a reason to check nothing.
        if "pyproject.toml" not in str(exc):
            raise
        err_console.print(
            f"warning: {exc}; gating with the defaults and KARMA_* variables", markup=False
        )
        return KarmaConfig.model_validate(env_layer(os.environ))


def _sandbox(
    repo: Path, config: KarmaConfig, layout: StackLayout, data: DataRoots
) -> tuple[Callable[[SandboxSpec], Sandbox], StackLayout]:
    """The sandbox backend, and each placed stack with its image (built when missing)."""
    from karma.sandbox import get_sandbox
    from karma.sandbox.images import ensure_image

    if not layout.placed:
        raise UsageError("--sandbox: no stack detected in this repository")
    backend = get_sandbox(config)
    images = [
        ensure_image(
            p.stack.name,
            repo,
            config,
            data=data,
            folder=p.folder,
            log=lambda line: err_console.print(line, markup=False),
        )
        for p in layout.placed
    ]
    return backend.start, layout.with_images(images)


@app.command()
def gate(
    base: Annotated[str, typer.Option("--base", help="The commit to compare against.")] = "HEAD",
    only: Annotated[
        list[str] | None, typer.Option("--only", help="Run only this gate (repeatable).")
    ] = None,
    fmt: Annotated[
        str, typer.Option("--format", "-f", help="text, json, sarif or markdown.")
    ] = "text",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the result here instead of stdout.")
    ] = None,
    sandbox: Annotated[
        bool,
        typer.Option("--sandbox", help="Run tests and pip freeze in the stack's Docker sandbox."),
    ] = False,
    ci: Annotated[
        bool,
        typer.Option(
            "--ci",
            help="CI mode: masks, annotations, step summary, outputs, SARIF "
            "(automatic when GITHUB_ACTIONS=true).",
        ),
    ] = False,
    trust_repo_config: TrustRepoConfig = False,
) -> ExitCode:
    """Run the quality gates on the working tree; exit 0 when every blocking gate passes."""
    from karma.action import publish_gates
    from karma.ci import is_ci, mask_lines
    from karma.gates import gate_tree, redact
    from karma.gates.change import resolve
    from karma.gates.interface import GateUnavailable
    from karma.gates.render import render
    from karma.home import base_roots
    from karma.layout import commit_layout
    from karma.text.inert import log_safe

    state.trust(trust_repo_config)
    if fmt not in ("text", "json", "sarif", "markdown"):
        raise UsageError(f"unknown format {fmt!r}", tip="use text, json, sarif or markdown")
    repo = state.repo
    try:
        base_sha = resolve(repo, base)
    except GateUnavailable as exc:
        raise UsageError(
            str(exc), tip="run karma gate in a git repository with --base REF"
        ) from None
    config = _config(base_sha)

    ci = ci or is_ci(os.environ)
    if ci:  # masks before anything else is printed
        sys.stderr.write("".join(line + "\n" for line in mask_lines(os.environ)))

    def progress(result: GateResult, blocking: bool) -> None:
        line = f"{result.name}: {result.status} ({result.duration_s:.1f}s) {redact(result.summary)}"
        err_console.print(log_safe(line) if ci else line, markup=False, highlight=False)

    names = tuple(name for item in only or () for name in item.split(",") if name)
    with base_roots(repo, base_sha) as data:
        layout = commit_layout(repo, base_sha, data)  # the base's stacks, each in its folder
        start_sandbox = None
        if sandbox:
            start_sandbox, layout = _sandbox(repo, config, layout, data)
        result = gate_tree(
            repo,
            base_sha,
            config,
            data=data,
            stack=layout.primary.stack if layout.placed else None,
            only=names,
            on_result=progress,
            start_sandbox=start_sandbox,
            sandbox_image=layout.primary.image or None if layout.placed else None,
            layout=layout,
        )
    if ci:
        publish_gates(result, repo=repo, environ=os.environ)
    text = render(result, fmt)  # type: ignore[arg-type]
    if output is not None:
        output.write_text(text + "\n", encoding="utf-8")
    else:
        out.print(text, markup=False, highlight=False, emoji=False, soft_wrap=True)
    return ExitCode.OK if result.status == "passed" else ExitCode.FAILED
