"""`karma plan`: show the plan a request would run, its routing and its forecast cost.

The plan comes from the planner model, or from `--plan-file` (validated the same way).
Text output is a tree by generation with the critical path marked; `--format
json|mermaid|dot` for machines. `--out` saves the plan in its editable form. A forecast
over `--max-cost` (or `budget.max_cost_usd`) is printed, then refused with exit 4.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from karma.cli.app import TrustRepoConfig, app, err_console, out, state
from karma.errors import ExitCode, UsageError

if TYPE_CHECKING:  # the plan, the planner and the config load at the command, not at start
    from rich.tree import Tree

    from karma.config import KarmaConfig
    from karma.plan import Plan
    from karma.routed import RoutedPlan


class Format(StrEnum):
    text = "text"
    json = "json"
    mermaid = "mermaid"
    dot = "dot"


def _history(config: KarmaConfig) -> list[dict[str, Any]]:
    """Past tasks from the run store, if there is one (`karma plan` never creates it)."""
    path = config.db_path(state.repo)
    if not path.is_file():
        return []
    from karma.store import Store

    store = Store(path)
    try:
        return store.task_history()
    finally:
        store.close()


def _make_plan(request: str, config: KarmaConfig) -> Plan:
    from rich.text import Text

    from karma.context import gather_context
    from karma.forecast import usd
    from karma.models import get_model
    from karma.planner import make_plan
    from karma.text.inert import inert_lines

    if not request.strip():
        raise UsageError("the request is empty", tip='karma plan "what to build"')
    context = gather_context(state.repo)
    model = get_model(config.models.planner_model(), config)
    err_console.print(f"planning with {model.name} ({context.tokens} tokens of context)")
    outcome = make_plan(request, context, model, repo=state.repo)
    for attempt in outcome.attempts:
        for problem in (*attempt.errors, *attempt.conflicts):
            line = inert_lines(f"attempt {attempt.number}: {problem}")  # quotes the model
            err_console.print(Text(line), style="yellow")
    err_console.print(
        f"planned in {len(outcome.attempts)} call(s), {outcome.usage.total_in:,} tokens in, "
        f"{outcome.usage.output_tokens:,} out, {usd(outcome.cost_usd)}"
    )
    return outcome.plan


def _save(plan: Plan, path: Path) -> None:
    import yaml

    data = plan.editable()
    if path.suffix.lower() in (".yaml", ".yml"):
        text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    else:
        text = json.dumps(data, indent=2) + "\n"
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{path}: cannot write the plan: {exc.strerror}") from None
    err_console.print(f"plan saved to {path}")


def _tree(routed: RoutedPlan, calibrated: bool) -> Tree:
    from rich.text import Text
    from rich.tree import Tree

    critical = set(routed.critical_path)
    root = Tree(Text.assemble(("Plan: ", "bold"), routed.plan.request))
    for number, generation in enumerate(routed.plan.generations, start=1):
        branch = root.add(Text(f"generation {number}", style="bold cyan"))
        for tid in generation:
            task, route = routed.plan.by_id[tid], routed.routing[tid]
            tokens = f"{task.estimated_tokens:,} tok"
            if calibrated:
                tokens += f" (calibrated {route.calibrated_tokens:,})"
            line = Text.assemble(
                ("* " if tid in critical else "  ", "bold red"),
                (tid, "bold"),
                f"  {task.title}  [{task.kind}]\n  {tokens} | {route.tier} {route.model}"
                f" | ${routed.costs[tid]:.4f}",
            )
            if task.deps:
                line.append(f" | deps: {', '.join(task.deps)}", style="dim")
            branch.add(line)
    return root


def _print_text(routed: RoutedPlan, calibrated: bool) -> None:
    from rich.text import Text

    plan = routed.plan
    out.print(_tree(routed, calibrated), soft_wrap=False)
    estimated = sum(task.estimated_tokens for task in plan.tasks)
    tokens = f"{estimated:,} tokens estimated"
    if calibrated:
        total = sum(route.calibrated_tokens for route in routed.routing.values())
        tokens += f", {total:,} calibrated"
    out.print(
        f"Total: {len(plan.tasks)} tasks in {len(plan.generations)} generations, {tokens}, "
        f"${routed.estimated_cost_usd:.4f}"
    )
    minutes = routed.duration_s / 60
    out.print(f"Critical path (*): {' -> '.join(routed.critical_path)}, ~{minutes:.0f} min")
    for conflict in plan.conflicts:
        out.print(Text(f"Likely conflict: {conflict.sentence()}", style="yellow"))
    for note in routed.notes:
        out.print(Text(f"Note: {note}", style="yellow"))


@app.command("plan")
def plan_command(
    spec: Annotated[str, typer.Argument(help="The feature request.", show_default=False)] = "",
    format: Annotated[Format, typer.Option("--format", "-f", help="Output format.")] = Format.text,
    json_flag: Annotated[bool, typer.Option("--json", help="Same as --format json.")] = False,
    plan_file: Annotated[
        Path | None, typer.Option("--plan-file", help="Use this plan (JSON/YAML) instead.")
    ] = None,
    out_file: Annotated[
        Path | None, typer.Option("--out", help="Save the plan (JSON/YAML) to edit.")
    ] = None,
    max_cost: Annotated[
        float | None, typer.Option("--max-cost", help="Refuse a plan forecast above this (USD).")
    ] = None,
    trust_repo_config: TrustRepoConfig = False,
) -> ExitCode:
    """Plan a request: the task DAG, routing, forecast cost and critical path."""
    from karma.forecast import check_budget, routed_plan
    from karma.planner import plan_from_file
    from karma.routed import to_dot, to_mermaid

    state.trust(trust_repo_config)
    config = state.config(**{"budget.max_cost_usd": max_cost})
    if plan_file is not None:
        plan = plan_from_file(plan_file, request=spec, repo=state.repo)
    else:
        plan = _make_plan(spec, config)
    history = _history(config)
    routed = routed_plan(plan, config, history)
    if out_file is not None:
        _save(plan, out_file)
    chosen = Format.json if json_flag else format
    from karma.testcommand import for_repo

    tests = for_repo(state.repo)
    if chosen is Format.json:
        contract = routed.contract()
        if tests is not None:
            contract["test_command"] = {"command": tests.command, "source": tests.source,
                                        "reason": tests.reason}  # fmt: skip
        out.out(json.dumps(contract, indent=2), highlight=False)
    elif chosen is Format.mermaid:
        out.out(to_mermaid(routed), highlight=False, end="")
    elif chosen is Format.dot:
        out.out(to_dot(routed), highlight=False, end="")
    else:
        _print_text(routed, calibrated=bool(history))
        if tests is not None:
            out.print(f"Tests: {tests.line()}", markup=False, highlight=False)
    check_budget(routed, config.budget.max_cost_usd)
    return ExitCode.OK
