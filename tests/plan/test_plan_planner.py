"""The planner's ask / validate / re-ask loop, against a fake model with canned replies."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from karma.context import RepoContext
from karma.errors import ExitCode, PlanError, UsageError
from karma.models.interface import (
    ModelReply,
    ModelRequest,
    ToolCall,
    Usage,
    UserMessage,
)
from karma.planner import PlanRejected, make_plan

CONTEXT = RepoContext(
    files=("app/api.py",), tree="app/\n  api.py", symbols="app/api.py: def main",
    stack="python", test_command="pytest", summarised=False,
)  # fmt: skip


def task(tid: str, deps: list[str] | None = None, files: list[str] | None = None) -> dict[str, Any]:
    return {"id": tid, "title": f"Task {tid}", "description": "d", "deps": deps or [],
            "estimated_tokens": 5_000, "kind": "code", "files": files or []}  # fmt: skip


def plan_reply(*tasks: dict[str, Any], n: int = 0) -> ModelReply:
    call = ToolCall(f"call_{n}", "submit_plan", {"tasks": list(tasks)})
    return ModelReply("", (call,), "tool_use", Usage(100, 50), "fake:planner", cost_usd=0.01)


def text_reply(text: str) -> ModelReply:
    return ModelReply(text, (), "end_turn", Usage(100, 50), "fake:planner")


class CannedModel:
    """A ModelClient that answers from a list, in order, and keeps every request."""

    name = "fake:planner"

    def __init__(self, replies: Sequence[ModelReply]) -> None:
        self.replies = list(replies)
        self.requests: list[ModelRequest] = []

    def complete(self, request: ModelRequest) -> ModelReply:
        self.requests.append(request)
        return self.replies[len(self.requests) - 1]


def feedback(request: ModelRequest) -> str:
    """What the planner told the model before this request: tool result or user text."""
    last = request.messages[-1]
    assert isinstance(last, UserMessage)
    return last.tool_results[0].content if last.tool_results else last.text


def test_a_valid_first_reply_is_one_call() -> None:
    model = CannedModel([plan_reply(task("api"), task("tests", ["api"]))])
    outcome = make_plan("Add an API", CONTEXT, model)
    assert [t.id for t in outcome.plan.tasks] == ["api", "tests"]
    assert len(model.requests) == 1
    first = model.requests[0]
    assert first.tool_choice == "submit_plan"
    assert [t.name for t in first.tools] == ["submit_plan"]
    assert first.purpose == "planner"
    assert "planner" in first.system
    first_text = first.messages[0]
    assert isinstance(first_text, UserMessage)
    assert first_text.text.startswith("Request: Add an API\n")
    assert "app/api.py: def main" in first_text.text
    assert outcome.attempts[0].errors == ()
    assert outcome.cost_usd == pytest.approx(0.01)


def test_a_cycle_is_sent_back_and_the_repair_accepted() -> None:
    model = CannedModel([
        plan_reply(task("a", ["b"]), task("b", ["a"])),
        plan_reply(task("a"), task("b", ["a"]), n=1),
    ])  # fmt: skip
    seen: list[ModelReply] = []
    outcome = make_plan("r", CONTEXT, model, on_reply=lambda _req, reply: seen.append(reply))
    assert outcome.plan.generations == (("a",), ("b",))
    assert len(seen) == 2
    second = model.requests[1]
    result = second.messages[-1]
    assert isinstance(result, UserMessage)
    assert result.tool_results[0].call_id == "call_0"
    assert result.tool_results[0].is_error
    assert feedback(second) == (
        "The plan is invalid:\n- The dependencies form a cycle: 'a' depends on 'b', 'b' depends "
        "on 'a'. Remove one of these dependencies or merge the tasks.\n"
        "Fix every error and call submit_plan."
    )
    assert [a.errors != () for a in outcome.attempts] == [True, False]


def test_text_instead_of_the_tool_is_re_asked() -> None:
    model = CannedModel([text_reply("Sure! First, we add..."), plan_reply(task("api"), n=1)])
    outcome = make_plan("r", CONTEXT, model)
    assert len(outcome.plan.tasks) == 1
    assert feedback(model.requests[1]) == (
        "You answered with text instead of calling submit_plan; call the submit_plan tool "
        "with the whole plan."
    )


@pytest.mark.parametrize(
    ("bad", "sentence"),
    [
        ([task("a", ["ghost"])], "Task 'a' depends on 'ghost', which is not a task in the plan."),
        ([task("a"), task("a")], "Task id 'a' is used by 2 tasks; ids must be unique."),
        ([task("a", files=["../../etc/passwd"])],
         "Task 'a' lists file '../../etc/passwd', which is outside the repository."),
        ([{**task("a"), "estimated_tokens": 10**9}],
         "Task 'a' has estimated_tokens 1000000000; it must be between 100 and 2000000."),
        ([task(f"t{i}") for i in range(2000)],
         "The plan has 2000 tasks; at most 200 are allowed. Merge small steps into larger tasks."),
    ],
)  # fmt: skip
def test_each_bad_plan_is_re_asked_with_its_exact_reason(
    bad: list[dict[str, Any]], sentence: str
) -> None:
    model = CannedModel([plan_reply(*bad), plan_reply(task("a"), n=1)])
    outcome = make_plan("r", CONTEXT, model)
    assert outcome.attempts[0].errors == (sentence,)
    assert f"- {sentence}\n" in feedback(model.requests[1])


def test_three_bad_replies_are_a_plan_error_with_the_last_errors() -> None:
    model = CannedModel([
        plan_reply(task("a", ["a"])),
        text_reply("no"),
        plan_reply(task("a", ["zzz"]), n=2),
        plan_reply(task("a"), n=3),  # never asked for
    ])  # fmt: skip
    with pytest.raises(PlanRejected) as caught:
        make_plan("r", CONTEXT, model)
    assert len(model.requests) == 3
    assert caught.value.exit_code == ExitCode.FAILED
    assert isinstance(caught.value, PlanError)
    assert str(caught.value) == (
        "the planner gave no valid plan in 3 attempts; last errors:\n"
        "- Task 'a' depends on 'zzz', which is not a task in the plan."
    )
    assert [len(a.errors) for a in caught.value.attempts] == [1, 1, 1]


def test_conflicts_are_sent_back_once() -> None:
    conflicting = (task("a", files=["app/api.py"]), task("b", files=["app/api.py"]))
    model = CannedModel([plan_reply(*conflicting), plan_reply(*conflicting, n=1)])
    outcome = make_plan("r", CONTEXT, model)
    assert len(model.requests) == 2
    assert "these tasks would likely conflict" in feedback(model.requests[1])
    assert outcome.attempts[0].conflicts
    # Still conflicting after being told: accepted, with the conflict flagged.
    assert len(outcome.plan.conflicts) == 1


def test_a_conflict_repair_that_breaks_the_plan_falls_back_to_the_valid_one() -> None:
    conflicting = (task("a", files=["f.py"]), task("b", files=["f.py"]))
    model = CannedModel([
        plan_reply(task("x", ["nope"])),
        plan_reply(*conflicting, n=1),
        plan_reply(task("a", ["a"]), n=2),
    ])  # fmt: skip
    outcome = make_plan("r", CONTEXT, model)
    assert [t.id for t in outcome.plan.tasks] == ["a", "b"]
    assert len(outcome.plan.conflicts) == 1


def test_a_reply_cut_at_max_tokens_says_so() -> None:
    cut = ModelReply("", (ToolCall("c", "submit_plan", {}),), "max_tokens", Usage(), "fake:planner")
    model = CannedModel([cut, plan_reply(task("a"), n=1)])
    outcome = make_plan("r", CONTEXT, model)
    assert outcome.attempts[0].errors == (
        "The reply was cut off at the token limit; submit a shorter plan.",
        "submit_plan input: missing required key 'tasks'.",
    )


@pytest.mark.parametrize("request_text", ["", "   \n\t "])
def test_an_empty_request_is_a_usage_error_without_a_call(request_text: str) -> None:
    model = CannedModel([])
    with pytest.raises(UsageError) as caught:
        make_plan(request_text, CONTEXT, model)
    assert caught.value.exit_code == ExitCode.USAGE
    assert model.requests == []


def test_paths_are_checked_against_the_repository(tmp_path: Path) -> None:
    (tmp_path / "link").symlink_to("/etc")
    model = CannedModel([plan_reply(task("a", files=["link/passwd"])), plan_reply(task("a"), n=1)])
    outcome = make_plan("r", CONTEXT, model, repo=tmp_path)
    assert outcome.attempts[0].errors == (
        "Task 'a' lists file 'link/passwd', which resolves outside the repository.",
    )


GOLDEN = Path(__file__).parent / "golden" / "planner_request.txt"


def test_the_rendered_planner_prompt_matches_its_golden_file() -> None:
    """Regenerate with KARMA_UPDATE_GOLDEN=1 after a deliberate prompt change."""
    import os

    model = CannedModel([plan_reply(task("api"))])
    make_plan("Add a /health endpoint", CONTEXT, model)
    request = model.requests[0]
    first = request.messages[0]
    assert isinstance(first, UserMessage)
    rendered = f"--- system ---\n{request.system}\n--- user ---\n{first.text}\n"
    if os.environ.get("KARMA_UPDATE_GOLDEN"):
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(rendered)
    assert rendered == GOLDEN.read_text()
