"""The escalation report: Markdown and JSON, the fix drafted by a model or from the hints."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from karma.config import KarmaConfig
from karma.heal import AttemptRecord, Escalation, Healer
from karma.models import get_model
from karma.models.script import Fault, parse_script
from karma.models.scripted import ScriptedModel
from karma.testing.model_server import ModelServer
from tests.heal.conftest import PYTEST_FAIL, evidence

FIX = "Root cause: add() subtracts. 1. Return a + b in calc.add."


@dataclass(frozen=True)
class Task:
    id: str
    title: str


def script() -> object:
    return parse_script({"conversations": [
        {"match": {"user": ["Task api: Add the calculator"]}, "replies": [{"text": FIX}]},
    ]})  # fmt: skip


def attempts(healer: Healer) -> list[AttemptRecord]:
    ev = evidence(PYTEST_FAIL, tool="pytest")
    cls = healer.classify(ev)
    return [AttemptRecord(1, ev, cls, "retry_with_hint", "failed"),
            AttemptRecord(2, ev, cls, "escalate_model", "failed")]  # fmt: skip


def test_report_without_model_uses_pattern_hints(make_healer: Callable[..., Healer]) -> None:
    healer = make_healer()
    reason = Escalation("retries_exhausted", "4 attempts failed")
    report = healer.escalation_report(
        Task("api", "Add the calculator"), attempts(healer), reason=reason
    )
    assert report.data["drafted_by"] == "pattern hints"
    assert report.data["attempts"][1]["remediation"] == "escalate_model"
    assert "FAILED tests/test_calc.py::test_add - assert -1 == 5" in report.data["key_lines"]
    assert report.data["human_decision"]
    for heading in ("## Attempts", "## Key log lines", "## Diagnosis", "## Recommended fix",
                    "## What you must decide"):  # fmt: skip
        assert heading in report.markdown
    assert "retries exhausted" in report.markdown


def test_report_with_scripted_model(make_healer: Callable[..., Healer]) -> None:
    healer = make_healer()
    model = ScriptedModel("triage", script())  # type: ignore[arg-type]
    report = healer.escalation_report(Task("api", "Add the calculator"), attempts(healer), model)
    assert report.data["recommended_fix"] == FIX and report.data["drafted_by"] == "scripted:triage"


@pytest.mark.parametrize("provider", ["anthropic", "openai"])
def test_report_over_http_falls_back_when_the_model_fails(
    make_healer: Callable[..., Healer], provider: str
) -> None:
    healer = make_healer()
    reason = Escalation("needs_approval", "critical", "edit_ci_workflow", "Allow a mirror.")
    with ModelServer(script()) as server:  # type: ignore[arg-type]
        base_url = server.anthropic_base_url if provider == "anthropic" else server.openai_base_url
        config = KarmaConfig.model_validate(
            {"providers": {provider: {"base_url": base_url, "max_retries": 0}}}
        )
        model = get_model(f"{provider}:triage", config, environ={})
        good = healer.escalation_report(Task("api", "Add the calculator"), attempts(healer), model,
                                        reason=reason)  # fmt: skip
        server.inject(Fault(status=400, times=1))
        bad = healer.escalation_report(Task("api", "Add the calculator"), attempts(healer), model,
                                       reason=reason)  # fmt: skip
    assert good.data["recommended_fix"] == FIX
    assert bad.data["drafted_by"] == "pattern hints" and bad.data["model_error"]
    assert "Approve or reject `edit_ci_workflow`: Allow a mirror." in bad.data["human_decision"][0]
