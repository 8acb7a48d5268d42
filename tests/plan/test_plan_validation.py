"""Validation of submit_plan input: every bad input the issue lists, with its exact sentence."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from karma.plan import (
    PlanInvalid,
    PlanLimits,
    parse_plan,
    strip_derived,
    submit_plan_schema,
)
from karma.routed import critical_path


def task(tid: str, deps: list[str] | None = None, **fields: Any) -> dict[str, Any]:
    return {
        "id": tid,
        "title": f"Task {tid}",
        "description": f"Do {tid}.",
        "deps": deps or [],
        "estimated_tokens": fields.pop("estimated_tokens", 10_000),
        "kind": fields.pop("kind", "code"),
        "files": fields.pop("files", []),
        **fields,
    }


def errors_of(data: Any, **kwargs: Any) -> tuple[str, ...]:
    with pytest.raises(PlanInvalid) as caught:
        parse_plan(data, request="r", **kwargs)
    return caught.value.errors


def test_a_valid_plan_has_generations_in_dependency_order() -> None:
    plan = parse_plan(
        {"tasks": [task("api"), task("db"), task("tests", ["api", "db"], kind="test")]},
        request="Add an API",
    )
    assert plan.generations == (("api", "db"), ("tests",))
    assert plan.by_id["tests"].deps == ("api", "db")
    assert plan.conflicts == ()


def test_a_cycle_is_named() -> None:
    data = {"tasks": [task("a", ["c"]), task("b", ["a"]), task("c", ["b"]), task("d")]}
    assert errors_of(data) == (
        "The dependencies form a cycle: 'a' depends on 'c', 'c' depends on 'b', "
        "'b' depends on 'a'. Remove one of these dependencies or merge the tasks.",
    )


def test_two_separate_cycles_are_both_named() -> None:
    data = {"tasks": [task("a", ["b"]), task("b", ["a"]), task("x", ["y"]), task("y", ["x"])]}
    found = errors_of(data)
    assert len(found) == 2
    assert all(sentence.startswith("The dependencies form a cycle") for sentence in found)


def test_unknown_dependency() -> None:
    assert errors_of({"tasks": [task("api", ["db"])]}) == (
        "Task 'api' depends on 'db', which is not a task in the plan.",
    )


def test_self_dependency() -> None:
    assert errors_of({"tasks": [task("api", ["api"])]}) == ("Task 'api' depends on itself.",)


def test_duplicate_ids() -> None:
    assert errors_of({"tasks": [task("api"), task("api")]}) == (
        "Task id 'api' is used by 2 tasks; ids must be unique.",
    )


@pytest.mark.parametrize("tokens", [0, -5, 10**9])
def test_absurd_estimates(tokens: int) -> None:
    assert errors_of({"tasks": [task("api", estimated_tokens=tokens)]}) == (
        f"Task 'api' has estimated_tokens {tokens}; it must be between 100 and 2000000.",
    )


@pytest.mark.parametrize(
    ("path", "sentence"),
    [
        (
            "../../etc/passwd",
            "Task 'api' lists file '../../etc/passwd', which is outside the repository.",
        ),
        (
            "app/../../x.py",
            "Task 'api' lists file 'app/../../x.py', which is outside the repository.",
        ),
        (
            "/etc/passwd",
            "Task 'api' lists file '/etc/passwd', which is an absolute path; "
            "list paths relative to the repository root.",
        ),
        ("", "Task 'api' lists an empty file path."),
        (".git/config", "Task 'api' lists file '.git/config', which is inside .git."),
    ],
)
def test_paths_outside_the_repository(path: str, sentence: str) -> None:
    assert errors_of({"tasks": [task("api", files=[path])]}) == (sentence,)


def test_a_symlink_out_of_the_repository_is_refused(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "escape").symlink_to(tmp_path)
    assert errors_of({"tasks": [task("api", files=["escape/x.py"])]}, repo=repo) == (
        "Task 'api' lists file 'escape/x.py', which resolves outside the repository.",
    )


def test_paths_are_normalised() -> None:
    plan = parse_plan({"tasks": [task("api", files=["./app//api.py", "app\\db.py"])]}, request="r")
    assert plan.by_id["api"].files == ("app/api.py", "app/db.py")


def test_no_tasks() -> None:
    assert errors_of({"tasks": []}) == ("The plan has no tasks; submit at least one task.",)


def test_thousands_of_tasks() -> None:
    data = {"tasks": [task(f"t{i}") for i in range(3000)]}
    assert errors_of(data) == (
        "The plan has 3000 tasks; at most 200 are allowed. Merge small steps into larger tasks.",
    )


def test_the_task_limit_is_configurable() -> None:
    data = {"tasks": [task(f"t{i}") for i in range(300)]}
    assert len(parse_plan(data, request="r", limits=PlanLimits(max_tasks=500)).tasks) == 300


def test_bad_ids_and_titles() -> None:
    data = {"tasks": [task("API Endpoints"), task("ok", title="  ")]}
    assert errors_of(data) == (
        "Task id 'API Endpoints' is not valid: use 1 to 40 lowercase letters, digits, '-' or "
        "'_', starting with a letter or digit.",
        "Task 'ok' has an empty title.",
    )


def test_shape_errors_name_the_task_and_the_key() -> None:
    data = {"tasks": [task("api", kind="deploy", priority=1), {"id": "db", "title": "DB"}]}
    assert errors_of(data) == (
        "task 'api': kind: Input should be 'code', 'test', 'docs', 'config' or 'migration'.",
        "task 'api': unknown key 'priority'.",
        "task 'db': missing required key 'estimated_tokens'.",
        "task 'db': missing required key 'kind'.",
    )


def test_not_an_object() -> None:
    assert errors_of(["api"]) == ("The submit_plan input must be an object with a 'tasks' list.",)
    assert errors_of({"tasks": "api"}) == (
        "submit_plan input: tasks: Input should be a valid list.",
    )
    assert errors_of({}) == ("submit_plan input: missing required key 'tasks'.",)


def test_every_error_is_collected_not_just_the_first() -> None:
    data = {
        "tasks": [
            task("a", ["a", "ghost"], estimated_tokens=0, files=["../x"]),
            task("b", ["c"]),
            task("c", ["b"]),
        ]
    }
    found = errors_of(data)
    assert len(found) == 5
    assert found[-1].startswith("The dependencies form a cycle: ")


def test_error_messages_are_capped() -> None:
    data = {"tasks": [task(f"t{i}", ["nope"]) for i in range(60)]}
    with pytest.raises(PlanInvalid) as caught:
        parse_plan(data, request="r")
    assert len(caught.value.errors) == 60
    assert str(caught.value).endswith("- ... and 35 more errors")


def test_parallel_tasks_on_one_file_are_flagged() -> None:
    plan = parse_plan(
        {
            "tasks": [
                task("api", files=["app/api.py"]),
                task("auth", files=["app/api.py"]),
                task("tests", ["api"], files=["app/api.py"]),
            ]
        },
        request="r",
    )
    # api -> tests are ordered; auth is parallel to both.
    pairs = {(c.first, c.second) for c in plan.conflicts}
    assert pairs == {("api", "auth"), ("auth", "tests")}
    assert plan.conflicts[0].sentence() == (
        "Tasks 'api' and 'auth' both change 'app/api.py' and neither depends on the other, "
        "so their branches would likely conflict when merged; add a dependency between them "
        "or merge them into one task."
    )


def test_a_transitive_path_is_enough_to_order_two_tasks() -> None:
    plan = parse_plan(
        {"tasks": [task("a", files=["f"]), task("b", ["a"]), task("c", ["b"], files=["f"])]},
        request="r",
    )
    assert plan.conflicts == ()


def test_critical_path_follows_the_heaviest_chain() -> None:
    plan = parse_plan(
        {"tasks": [task("a"), task("b"), task("c", ["a", "b"]), task("d", ["c"]), task("e")]},
        request="r",
    )
    weights = {"a": 1.0, "b": 5.0, "c": 1.0, "d": 1.0, "e": 6.0}
    assert critical_path(plan, weights) == ("b", "c", "d")


def test_the_contract_round_trips_through_strip_derived() -> None:
    contract = {
        "request": "Add an API",
        "tasks": [{**task("api"), "calibrated_tokens": 1, "tier": "small", "model": "m",
                   "estimated_cost_usd": 0.1}],
        "critical_path": ["api"],
        "estimated_cost_usd": 0.1,
        "generations": [["api"]],
    }  # fmt: skip
    request, body = strip_derived(contract)
    assert request == "Add an API"
    assert parse_plan(body, request=request).by_id["api"].estimated_tokens == 10_000


def test_the_tool_schema_forbids_unknown_keys() -> None:
    schema = submit_plan_schema()
    assert schema["additionalProperties"] is False
    assert "$defs" not in schema
    task_schema = schema["properties"]["tasks"]["items"]
    assert task_schema["additionalProperties"] is False
    assert set(task_schema["required"]) == {"id", "title", "estimated_tokens", "kind"}
    assert task_schema["properties"]["kind"]["enum"] == [
        "code",
        "test",
        "docs",
        "config",
        "migration",
    ]
    assert "finished before" in task_schema["properties"]["deps"]["description"]


@pytest.mark.parametrize(
    "tid",
    [
        "a\n",  # `$` matches before a trailing newline
        "a\r",
        "a\nKarma-Run: x",
        "\u0430pi",  # Cyrillic a
        "\uff41pi",  # fullwidth a
        "api\u200b",  # zero-width space
        "ap\u0131",  # dotless i
        "\u0661\u0662",  # Arabic-Indic digits
        "a" * 41,
    ],
)
def test_an_id_is_matched_whole_and_ascii_only(tid: str) -> None:
    [error] = errors_of({"tasks": [task(tid, title="A task")]})
    assert error.startswith("Task id '") and "is not valid" in error
    assert "\n" not in error and "\r" not in error


@pytest.mark.parametrize(
    "title", ["Add it\nKarma-Task: evil", "Add it\r\nKarma-Run: x", "Add\x1b[31m red", "a\u2028b"]
)
def test_a_title_is_one_line_of_plain_text(title: str) -> None:
    assert errors_of({"tasks": [task("ok", title=title)]}) == (
        "Task 'ok' has a title with a line break or control character; a title is one line "
        "of plain text (put details in the description).",
    )


def test_a_file_path_with_a_control_character_is_refused() -> None:
    assert errors_of({"tasks": [task("ok", files=["a\x1b[31m.py"])]}) == (
        "Task 'ok' lists file 'a\\x1b[31m.py', with a control character.",
    )
