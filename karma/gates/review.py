"""The review gate: a reviewer model reads the change and answers through `submit_review`.

The reviewer gets the request, the plan, the diff and the other gates' results, with
the rubric (`quality_gates/review/rubric.md`) as its system prompt, and must call
`submit_review` (forced by `tool_choice`). The verdict is validated with pydantic
(`extra="forbid"`); an invalid one is asked for again once with the validation error,
then the gate is `error`. Everything the model wrote is redacted before it is kept.

Inside `karma build` the engine turns blocking findings into a fix task; this module only
reviews and parses (`parse_review`, `ReviewVerdict`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from karma.errors import MissingKeyError
from karma.gates.change import diff_text
from karma.gates.interface import (
    Finding,
    GateContext,
    GateResult,
    GateSettings,
    GateUnavailable,
    Status,
)
from karma.gates.secrets import redact
from karma.gates.suite import review_rubric
from karma.models.interface import (
    AssistantMessage,
    ModelClient,
    ModelRequest,
    ProviderError,
    ToolResult,
    ToolSpec,
    UserMessage,
)

TOOL_NAME = "submit_review"
NO_REQUEST = "(no request: a human-written change)"


class ReviewFinding(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str
    line: int = Field(ge=0)
    severity: Literal["blocker", "major", "minor"]
    message: str


class ReviewVerdict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    verdict: Literal["approve", "request_changes"]
    summary: str
    findings: tuple[ReviewFinding, ...] = ()


SUBMIT_REVIEW = ToolSpec(
    TOOL_NAME,
    "Submit your review of the change: a verdict, a one-paragraph summary and the findings.",
    {
        "type": "object",
        "properties": {
            "verdict": {"type": "string", "enum": ["approve", "request_changes"]},
            "summary": {"type": "string"},
            "findings": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "path": {"type": "string"},
                        "line": {"type": "integer", "minimum": 0},
                        "severity": {"type": "string", "enum": ["blocker", "major", "minor"]},
                        "message": {"type": "string"},
                    },
                    "required": ["path", "line", "severity", "message"],
                    "additionalProperties": False,
                },
            },
        },
        "required": ["verdict", "summary", "findings"],
        "additionalProperties": False,
    },
)


def parse_review(arguments: Mapping[str, Any]) -> ReviewVerdict:
    """The verdict in a `submit_review` call; `ValidationError` when its shape is wrong."""
    verdict = ReviewVerdict.model_validate(dict(arguments))
    return verdict.model_copy(
        update={
            "summary": redact(verdict.summary),
            "findings": tuple(
                f.model_copy(update={"message": redact(f.message)}) for f in verdict.findings
            ),
        }
    )


def _prompt(ctx: GateContext, diff: str) -> str:
    gates = (
        "\n".join(
            f"- {r.name}: {r.status} - {r.summary}"
            + "".join(f"\n  - [{f.rule}] {f.path}:{f.line} {f.message}" for f in r.findings[:20])
            for r in ctx.previous
        )
        or "(none ran)"
    )
    return redact(
        f"Review this change.\n\n## Request\n{ctx.request or NO_REQUEST}\n\n"
        f"## Plan\n{ctx.plan or '(no plan)'}\n\n## Other gates\n{gates}\n\n"
        f"## Diff against {ctx.base[:12]}\n"
        f"```diff\n{diff}\n```\n\nAnswer with the {TOOL_NAME} tool."
    )


class ReviewGate:
    name = "review"

    def run(self, ctx: GateContext, settings: GateSettings) -> GateResult:
        started = time.monotonic()
        model = ctx.reviewer
        if model is None:
            from karma.models import get_model

            try:
                model = get_model(ctx.config.models.reviewer, ctx.config)
            except MissingKeyError as exc:
                if settings.get("skip_without_model", True):
                    return GateResult(self.name, "skipped", (), 0.0, f"no reviewer model: {exc}")
                raise GateUnavailable(f"no reviewer model: {exc}") from None
        diff = diff_text(ctx)
        if not diff.strip():
            return GateResult(
                self.name,
                "skipped",
                (),
                time.monotonic() - started,
                "empty diff: nothing to review",
            )
        limit = int(settings.get("max_diff_chars", 60_000))
        if len(diff) > limit:
            diff = f"[... {len(diff) - limit} characters cut ...]\n{diff[-limit:]}"
        verdict = self._ask(model, review_rubric(ctx.data), _prompt(ctx, diff))
        block = set(settings.get("block_severities", ["blocker", "major"]))
        findings = tuple(
            Finding(
                f"review.{f.severity}",
                f.severity if f.severity in block else "minor",
                f.path,
                f.line,
                f.message,
            )
            for f in verdict.findings
        )
        blocking = [f for f in verdict.findings if f.severity in block]
        status: Status = (
            "failed"
            if blocking or (verdict.verdict == "request_changes" and not verdict.findings)
            else ("warning" if findings else "passed")
        )
        return GateResult(
            self.name,
            status,
            findings,
            time.monotonic() - started,
            f"{verdict.verdict} ({model.name}): {verdict.summary[:200]}",
            data={
                "verdict": verdict.verdict,
                "summary": verdict.summary,
                "model": model.name,
                "review": verdict.model_dump(mode="json"),
            },
        )

    def _ask(self, model: ModelClient, rubric: str, prompt: str) -> ReviewVerdict:
        messages: list[UserMessage | AssistantMessage] = [UserMessage(prompt)]
        problem = ""
        for _ in range(2):
            request = ModelRequest(
                rubric,
                tuple(messages),
                (SUBMIT_REVIEW,),
                max_tokens=4096,
                tool_choice=TOOL_NAME,
                purpose="reviewer",
            )
            try:
                reply = model.complete(request)
            except ProviderError as exc:
                raise GateUnavailable(f"the reviewer model failed: {redact(str(exc))}") from None
            call = next((c for c in reply.tool_calls if c.name == TOOL_NAME), None)
            if call is None:
                problem = f"the reply did not call {TOOL_NAME}"
                messages += [reply.as_message(), UserMessage(f"Answer by calling {TOOL_NAME}.")]
                continue
            try:
                return parse_review(call.arguments)
            except ValidationError as exc:
                error = exc.errors()[0]
                where = ".".join(str(p) for p in error["loc"]) or "(top level)"
                problem = f"invalid {TOOL_NAME} arguments: {where}: {error['msg']}"
                messages += [
                    reply.as_message(),
                    UserMessage(
                        tool_results=(
                            ToolResult(
                                call.id,
                                f"{problem}. Call {TOOL_NAME} again with arguments "
                                f"matching its schema: " + json.dumps(SUBMIT_REVIEW.input_schema),
                                is_error=True,
                            ),
                        )
                    ),
                ]
        raise GateUnavailable(f"the reviewer gave no valid review after a second ask ({problem})")
