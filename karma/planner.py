"""The planner: a request and a repository context in, a validated `Plan` out.

The model is offered one tool, `submit_plan`, and made to call it. Its input is
validated (karma/plan.py); when it breaks rules, the exact errors go back as the tool's
error result (or as a user message when the model answered with text) and it is asked
again, at most `MAX_REASKS` times, so at most three calls in all. Likely merge conflicts
(two parallel tasks declaring one file) are sent back once, asking to order or merge
the tasks; a plan still conflicting after that is accepted with the conflicts flagged.
Nothing is recorded here: the outcome lists every attempt and its errors, and
`on_reply` sees each call as it happens, for the engine to record.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from karma.context import RepoContext
from karma.errors import PlanError, UsageError
from karma.models.interface import (
    AssistantMessage,
    Message,
    ModelClient,
    ModelReply,
    ModelRequest,
    ToolResult,
    ToolSpec,
    Usage,
    UserMessage,
)
from karma.plan import (
    DEFAULT_LIMITS,
    Plan,
    PlanInvalid,
    PlanLimits,
    format_errors,
    parse_plan,
    strip_derived,
    submit_plan_schema,
)

MAX_REASKS = 2
PLAN_MAX_TOKENS = 16_000
"""Room for the largest plan allowed (200 tasks of a few lines each)."""

SYSTEM = """\
You are KARMA's planner. You turn a feature request into a plan of tasks for coding \
agents. Each task runs alone, in its own git worktree, and is merged when done.

Call the submit_plan tool exactly once with the whole plan. Rules:
- id: 1 to 40 lowercase letters, digits, '-' or '_'; unique.
- kind: one of code, test, docs, config, migration.
- deps: ids of tasks that must be finished first; no cycles, no task depends on itself.
- estimated_tokens: total tokens (input + output) an agent will spend on the task, \
between {min_tokens} and {max_tokens}.
- files: paths relative to the repository root that the task creates or changes.
- At most {max_tasks} tasks; prefer a few cohesive tasks over many tiny ones.
- Two tasks that change the same file must not run in parallel: make one depend on the \
other, or merge them.
"""


def submit_plan_tool() -> ToolSpec:
    return ToolSpec(
        name="submit_plan",
        description="Submit the plan: the tasks, their dependencies, kinds, estimates, files.",
        input_schema=submit_plan_schema(),
    )


@dataclass(frozen=True)
class PlanAttempt:
    number: int
    reply: ModelReply
    errors: tuple[str, ...]
    """What was wrong with this reply (empty: accepted)."""
    conflicts: tuple[str, ...] = ()
    """Likely merge conflicts sent back with this reply's plan."""


@dataclass(frozen=True)
class PlanOutcome:
    plan: Plan
    attempts: tuple[PlanAttempt, ...]

    @property
    def usage(self) -> Usage:
        total = Usage()
        for attempt in self.attempts:
            total = total + attempt.reply.usage
        return total

    @property
    def cost_usd(self) -> float:
        return sum(attempt.reply.cost_usd for attempt in self.attempts)


class PlanRejected(PlanError):
    """No valid plan within the limit; `attempts` holds each reply and its errors."""

    def __init__(self, attempts: tuple[PlanAttempt, ...]) -> None:
        self.attempts = attempts
        last = attempts[-1].errors if attempts else ()
        super().__init__(
            f"the planner gave no valid plan in {len(attempts)} attempts; last errors:\n"
            + format_errors(last),
            tip="rephrase the request, or write the plan yourself and pass --plan-file",
        )


def first_message(request: str, context: RepoContext) -> str:
    return (
        f"Request: {request.strip()}\n\n"
        f"Repository context:\n{context.render()}\n\n"
        "Plan the request and call submit_plan."
    )


def make_plan(
    request: str,
    context: RepoContext,
    model: ModelClient,
    *,
    repo: Path | None = None,
    limits: PlanLimits = DEFAULT_LIMITS,
    on_reply: Callable[[ModelRequest, ModelReply], None] | None = None,
) -> PlanOutcome:
    """Ask `model` for a plan, re-asking with the exact errors; `PlanRejected` past the limit."""
    if not request.strip():
        raise UsageError("the request is empty", tip='karma plan "what to build"')
    system = SYSTEM.format(
        min_tokens=limits.min_tokens, max_tokens=limits.max_tokens, max_tasks=limits.max_tasks
    )
    messages: list[Message] = [UserMessage(first_message(request, context))]
    attempts: list[PlanAttempt] = []
    fallback: Plan | None = None  # valid but conflicting, kept in case the repair breaks it
    for number in range(1, MAX_REASKS + 2):
        call = ModelRequest(
            system=system,
            messages=tuple(messages),
            tools=(submit_plan_tool(),),
            max_tokens=PLAN_MAX_TOKENS,
            tool_choice="submit_plan",
            purpose="planner",
        )
        reply = model.complete(call)
        if on_reply is not None:
            on_reply(call, reply)
        said = reply.as_message("plan").offered(("submit_plan",))  # thinking blocks kept
        messages.append(said)
        calls = [tc for tc in said.tool_calls if tc.name == "submit_plan"]
        if not calls:
            errors: tuple[str, ...] = (
                "You answered with text instead of calling submit_plan; call the "
                "submit_plan tool with the whole plan.",
            )
            attempts.append(PlanAttempt(number, reply, errors))
            # Any other tool call still needs its result before the next user turn.
            results = tuple(
                ToolResult(tc.id, "Unknown tool; only submit_plan exists.", is_error=True)
                for tc in said.tool_calls
            )
            messages.append(UserMessage(errors[0], tool_results=results))
            continue
        try:
            plan = parse_plan(calls[0].arguments, request=request.strip(), repo=repo, limits=limits)
        except PlanInvalid as exc:
            errors = exc.errors
            if reply.stop_reason == "max_tokens":
                errors = (
                    "The reply was cut off at the token limit; submit a shorter plan.",
                    *errors,
                )
            attempts.append(PlanAttempt(number, reply, errors))
            text = "The plan is invalid:\n" + format_errors(errors) + "\nFix every error and "
            messages.append(UserMessage(tool_results=_results(said, text + "call submit_plan.")))
            continue
        sent_conflicts = any(attempt.conflicts for attempt in attempts)
        if plan.conflicts and not sent_conflicts and number <= MAX_REASKS:
            conflicts = tuple(conflict.sentence() for conflict in plan.conflicts)
            attempts.append(PlanAttempt(number, reply, (), conflicts))
            fallback = plan
            text = (
                "The plan is valid but these tasks would likely conflict:\n"
                + format_errors(conflicts)
                + "\nOrder or merge them and call submit_plan again."
            )
            messages.append(UserMessage(tool_results=_results(said, text)))
            continue
        attempts.append(PlanAttempt(number, reply, ()))
        return PlanOutcome(plan, tuple(attempts))
    if fallback is not None:
        return PlanOutcome(fallback, tuple(attempts))
    raise PlanRejected(tuple(attempts))


def _results(said: AssistantMessage, text: str) -> tuple[ToolResult, ...]:
    """One result per tool call: the first submit_plan gets `text`, any other a refusal."""
    results = []
    answered = False
    for call in said.tool_calls:
        if call.name == "submit_plan" and not answered:
            results.append(ToolResult(call.id, text, is_error=True))
            answered = True
        else:
            results.append(ToolResult(call.id, "Ignored: submit exactly one plan.", is_error=True))
    return tuple(results)


def plan_from_file(path: Path, *, request: str | None, repo: Path | None) -> Plan:
    """A user's plan file (JSON or YAML; editable form or the full contract), validated."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the plan file: {exc.strerror}") from None
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise PlanError(f"{path}: not valid {path.suffix.lstrip('.') or 'JSON'}: {exc}") from None
    file_request, body = strip_derived(data)
    chosen = (request or "").strip() or (file_request or "").strip()
    if not chosen:
        raise UsageError(
            f"{path}: the plan file has no request and none was given",
            tip='karma plan "what to build" --plan-file plan.json',
        )
    try:
        return parse_plan(body, request=chosen, repo=repo)
    except PlanInvalid as exc:
        raise PlanError(f"{path}: the plan is invalid:\n{format_errors(exc.errors)}") from None
