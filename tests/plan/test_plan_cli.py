"""`karma plan` end to end: the real anthropic and openai SDKs against the loopback server."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from karma.cli import main
from karma.models.script import parse_script
from karma.store import Store
from karma.testing.model_server import ModelServer

REQUEST = "Add a /health endpoint"
CONTRACT_TASK_KEYS = [
    "id", "title", "description", "deps", "kind", "files", "estimated_tokens",
    "calibrated_tokens", "tier", "model", "estimated_cost_usd",
]  # fmt: skip
MODELS = {"anthropic": "anthropic:claude-sonnet-4-5", "openai": "openai:gpt-5"}


def task(tid: str, deps: list[str], tokens: int, kind: str, files: list[str]) -> dict[str, Any]:
    return {"id": tid, "title": f"Do {tid}", "description": f"{tid} in detail", "deps": deps,
            "estimated_tokens": tokens, "kind": kind, "files": files}  # fmt: skip


GOOD = [
    task("api", [], 30_000, "code", ["app/api.py"]),
    task("tests", ["api"], 6_000, "test", ["tests/test_api.py"]),
    task("docs", [], 2_000, "docs", ["README.md"]),
]
CYCLE = [task("api", ["tests"], 30_000, "code", ["app/api.py"]), *GOOD[1:]]


def plan_call(tasks: list[dict[str, Any]]) -> dict[str, Any]:
    return {"tool_calls": [{"name": "submit_plan", "arguments": {"tasks": tasks}}]}


def use_script(server: ModelServer, *replies: dict[str, Any]) -> None:
    conversation = {"name": "plan", "match": {"tool": "submit_plan", "user": [REQUEST]},
                    "replies": list(replies)}  # fmt: skip
    server.set_script(parse_script({"conversations": [conversation]}))


@pytest.fixture
def repo(git_repo: Path) -> Path:
    """A small Python project."""
    (git_repo / "pyproject.toml").write_text("[project]\nname = 'svc'\nversion = '0.1'\n")
    (git_repo / "app").mkdir()
    (git_repo / "app" / "__init__.py").write_text("")
    (git_repo / "app" / "api.py").write_text("def create_app():\n    return {}\n")
    (git_repo / "tests").mkdir()
    (git_repo / "tests" / "test_api.py").write_text("from app.api import create_app\n")
    subprocess.run(["git", "add", "-A"], cwd=git_repo, check=True)
    return git_repo


@pytest.fixture(params=["anthropic", "openai"])
def provider(
    request: pytest.FixtureRequest, model_server: ModelServer, monkeypatch: pytest.MonkeyPatch
) -> str:
    """The planner model on one provider, pointed at the loopback server with a dummy key."""
    name: str = request.param
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key-anthropic")
    monkeypatch.setenv("OPENAI_API_KEY", "test-key-openai")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", model_server.anthropic_base_url)
    monkeypatch.setenv("OPENAI_BASE_URL", model_server.openai_base_url)
    monkeypatch.setenv("KARMA_MODELS__PLANNER", MODELS[name])
    for prov in MODELS:
        monkeypatch.setenv(f"KARMA_PROVIDERS__{prov.upper()}__MAX_RETRIES", "0")
    return name


def run(repo: Path, *args: str) -> int:
    return main(["-C", str(repo), "plan", *args])


def test_json_contract_with_the_repaired_plan_after_a_cycle(
    repo: Path, provider: str, model_server: ModelServer, capsys: pytest.CaptureFixture[str]
) -> None:
    use_script(model_server, plan_call(CYCLE), plan_call(GOOD))
    assert run(repo, REQUEST, "--format", "json") == 0
    captured = capsys.readouterr()
    data = json.loads(captured.out)
    assert list(data) == ["request", "tasks", "critical_path", "estimated_cost_usd", "generations"]
    assert data["request"] == REQUEST
    assert [list(t) for t in data["tasks"]] == [CONTRACT_TASK_KEYS] * 3
    by_id = {t["id"]: t for t in data["tasks"]}
    assert by_id["api"]["deps"] == []  # the repaired plan, not the cyclic one
    assert by_id["api"]["tier"] == "medium"
    assert by_id["api"]["model"] == "anthropic:claude-sonnet-4-5"
    assert by_id["docs"]["tier"] == "small"
    assert by_id["docs"]["model"] == "anthropic:claude-haiku-4-5"
    assert all(t["estimated_cost_usd"] > 0 for t in data["tasks"])
    assert data["estimated_cost_usd"] == pytest.approx(
        sum(t["estimated_cost_usd"] for t in data["tasks"]), abs=1e-5
    )
    assert data["critical_path"] == ["api", "tests"]
    assert data["generations"] == [["api", "docs"], ["tests"]]
    assert len(model_server.requests) == 2
    # The exact error went back to the model over the wire, in the provider's protocol.
    second = json.dumps(model_server.requests[1].body)
    assert "The dependencies form a cycle: 'api' depends on 'tests'" in second


def test_text_instead_of_the_tool_is_re_asked(
    repo: Path, provider: str, model_server: ModelServer, capsys: pytest.CaptureFixture[str]
) -> None:
    use_script(model_server, {"text": "I would start with the API."}, plan_call(GOOD))
    assert run(repo, REQUEST, "--json") == 0
    assert len(json.loads(capsys.readouterr().out)["tasks"]) == 3
    assert "instead of calling submit_plan" in json.dumps(model_server.requests[1].body)


def test_three_invalid_replies_exit_1_with_the_last_errors(
    repo: Path, provider: str, model_server: ModelServer, capsys: pytest.CaptureFixture[str]
) -> None:
    absurd = [task("api", [], 10**9, "code", ["../../etc/passwd"])]
    use_script(model_server, plan_call(CYCLE), {"text": "hmm"}, plan_call(absurd))
    assert run(repo, REQUEST, "--json") == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    err = " ".join(captured.err.split())  # rich wraps stderr lines
    assert "the planner gave no valid plan in 3 attempts; last errors:" in err
    assert "estimated_tokens 1000000000" in err
    assert "'../../etc/passwd', which is outside the repository" in err
    assert len(model_server.requests) == 3


@pytest.mark.parametrize("spec", ["", "   "])
def test_an_empty_request_is_exit_2_without_a_model_call(
    repo: Path, provider: str, model_server: ModelServer, spec: str
) -> None:
    assert run(repo, spec) == 2
    assert model_server.requests == []


def test_a_forecast_over_max_cost_is_exit_4(
    repo: Path, provider: str, model_server: ModelServer, capsys: pytest.CaptureFixture[str]
) -> None:
    use_script(model_server, plan_call(GOOD))
    assert run(repo, REQUEST, "--json", "--max-cost", "0.01") == 4
    captured = capsys.readouterr()
    assert "over the budget of $0.0100" in " ".join(captured.err.split())
    assert json.loads(captured.out)["estimated_cost_usd"] > 0.01


def test_the_configured_budget_refuses_too(
    repo: Path, provider: str, model_server: ModelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_script(model_server, plan_call(GOOD))
    monkeypatch.setenv("KARMA_MAX_COST", "0.001")
    assert run(repo, REQUEST, "-f", "dot") == 4


def test_text_view_marks_the_critical_path(
    repo: Path, provider: str, model_server: ModelServer, capsys: pytest.CaptureFixture[str]
) -> None:
    use_script(model_server, plan_call(GOOD))
    assert run(repo, REQUEST) == 0
    out = capsys.readouterr().out
    assert "generation 1" in out and "generation 2" in out
    assert "* api" in out and "* tests" in out and "  docs" in out
    assert "Critical path (*): api -> tests" in out
    assert "Total: 3 tasks in 2 generations, 38,000 tokens estimated" in out
    assert "calibrated" not in out  # no history yet


def test_mermaid_and_dot(
    repo: Path, provider: str, model_server: ModelServer, capsys: pytest.CaptureFixture[str]
) -> None:
    use_script(model_server, plan_call(GOOD))
    assert run(repo, REQUEST, "--format", "mermaid") == 0
    mermaid = capsys.readouterr().out.splitlines()
    assert mermaid[0] == "flowchart TD"
    assert "    t_api --> t_tests" in mermaid
    assert "    class t_api,t_tests critical" in mermaid
    assert run(repo, REQUEST, "--format", "dot") == 0
    dot = capsys.readouterr().out
    assert dot.startswith("digraph plan {") and dot.rstrip().endswith("}")
    assert '    "api" -> "tests";' in dot
    assert dot.count("{") == dot.count("}")


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_out_and_plan_file_round_trip_without_a_model(
    repo: Path,
    provider: str,
    model_server: ModelServer,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    suffix: str,
) -> None:
    use_script(model_server, plan_call(GOOD))
    saved = tmp_path / f"plan{suffix}"
    assert run(repo, REQUEST, "--json", "--out", str(saved)) == 0
    first = json.loads(capsys.readouterr().out)
    data = yaml.safe_load(saved.read_text())
    assert list(data) == ["request", "tasks"]
    assert "tier" not in data["tasks"][0]
    calls = len(model_server.requests)
    assert run(repo, "--plan-file", str(saved), "--json") == 0
    assert json.loads(capsys.readouterr().out) == first
    assert len(model_server.requests) == calls


def test_the_json_contract_is_accepted_as_a_plan_file(
    repo: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    derived = {"tier": "large", "model": "x", "calibrated_tokens": 1, "estimated_cost_usd": 9.0}
    contract = {
        "request": REQUEST,
        "tasks": [{**GOOD[0], **derived}],
        "critical_path": ["api"],
        "estimated_cost_usd": 9.0,
        "generations": [["api"]],
    }
    path = tmp_path / "contract.json"
    path.write_text(json.dumps(contract))
    assert run(repo, "--plan-file", str(path), "--json") == 0
    task_out = json.loads(capsys.readouterr().out)["tasks"][0]
    assert task_out["tier"] == "medium"  # derived fields are recomputed, never trusted


def test_an_invalid_plan_file_is_exit_1_with_every_error(
    repo: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "plan.json"
    path.write_text(json.dumps({"request": "r", "tasks": [*CYCLE, GOOD[0]]}))
    assert run(repo, "--plan-file", str(path)) == 1
    err = " ".join(capsys.readouterr().err.split())  # rich wraps stderr lines
    assert "Task id 'api' is used by 2 tasks; ids must be unique." in err
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    assert run(repo, "--plan-file", str(broken)) == 1
    assert "not valid json" in " ".join(capsys.readouterr().err.split())


def test_history_in_the_store_shows_calibrated_estimates(
    repo: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    store = Store(repo / ".karma" / "karma.db")
    store.create_run("old", "earlier", repo)
    for i in range(3):
        store.upsert_task("old", f"t{i}", title="t", kind="code", status="succeeded",
                          tier="medium", estimated_tokens=10_000, tokens_in=15_000,
                          tokens_out=5_000, finished_at="2026-11-01T00:00:00Z")  # fmt: skip
    store.close()
    path = tmp_path / "plan.json"
    path.write_text(json.dumps({"request": REQUEST, "tasks": GOOD}))
    assert run(repo, "--plan-file", str(path)) == 0
    out = capsys.readouterr().out
    assert "30,000 tok (calibrated 60,000)" in out
    assert "large" in out
    assert run(repo, "--plan-file", str(path), "--json") == 0
    api = json.loads(capsys.readouterr().out)["tasks"][0]
    assert (api["estimated_tokens"], api["calibrated_tokens"], api["tier"]) == (
        30_000,
        60_000,
        "large",
    )


BAD_PLANS = {
    "unknown-dependency": (
        [task("api", ["db"], 5_000, "code", [])],
        "Task 'api' depends on 'db', which is not a task in the plan.",
    ),
    "duplicate-ids": (
        [task("api", [], 5_000, "code", []), task("api", [], 5_000, "code", [])],
        "Task id 'api' is used by 2 tasks; ids must be unique.",
    ),
    "zero-estimate": (
        [task("api", [], 0, "code", [])],
        "Task 'api' has estimated_tokens 0; it must be between 100 and 2000000.",
    ),
    "negative-estimate": (
        [task("api", [], -1, "code", [])],
        "Task 'api' has estimated_tokens -1; it must be between 100 and 2000000.",
    ),
    "huge-estimate": (
        [task("api", [], 10**9, "code", [])],
        "Task 'api' has estimated_tokens 1000000000; it must be between 100 and 2000000.",
    ),
    "path-escape": (
        [task("api", [], 5_000, "code", ["../../etc/passwd"])],
        "Task 'api' lists file '../../etc/passwd', which is outside the repository.",
    ),
    "thousands-of-tasks": (
        [task(f"t{i}", [], 5_000, "code", []) for i in range(2500)],
        "The plan has 2500 tasks; at most 200 are allowed. Merge small steps into larger tasks.",
    ),
    "self-dependency": (
        [task("api", ["api"], 5_000, "code", [])],
        "Task 'api' depends on itself.",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_PLANS))
def test_each_bad_plan_is_re_asked_over_the_wire(
    repo: Path, provider: str, model_server: ModelServer, case: str
) -> None:
    from karma.config import load_config
    from karma.context import gather_context
    from karma.models import get_model
    from karma.planner import make_plan

    bad, sentence = BAD_PLANS[case]
    use_script(model_server, plan_call(bad), plan_call(GOOD))
    config = load_config(repo)
    model = get_model(config.models.planner_model(), config)
    outcome = make_plan(REQUEST, gather_context(repo), model, repo=repo)
    assert outcome.attempts[0].errors == (sentence,)
    assert [t.id for t in outcome.plan.tasks] == ["api", "tests", "docs"]
    assert f"- {sentence}" in json.dumps(model_server.requests[1].body)
    assert outcome.usage.input_tokens > 0


EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "inventory"


def test_done_when_json_contract_on_the_example_repository_after_a_cycle(
    tmp_path: Path, provider: str, model_server: ModelServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """The issue's "done when": the example project, a cyclic first reply, the repaired plan."""
    repo = tmp_path / "inventory"
    shutil.copytree(EXAMPLE, repo)
    for args in (["init", "-q", "-b", "main"], ["add", "-A"]):
        subprocess.run(["git", *args], cwd=repo, check=True)
    request = "Add CSV export and a low-stock report"
    tasks = [
        task("csv_export", ["docs"], 6_000, "code", ["inventory/export.py"]),
        task("low_stock", [], 12_000, "code", ["inventory/reports.py"]),
        task("cli", ["csv_export", "low_stock"], 45_000, "code", ["inventory/cli.py"]),
        task("docs", ["cli"], 3_000, "docs", ["README.md"]),
    ]
    repaired = [{**tasks[0], "deps": []}, *tasks[1:]]
    conversation = {"match": {"tool": "submit_plan", "user": [request]},
                    "replies": [plan_call(tasks), plan_call(repaired)]}  # fmt: skip
    model_server.set_script(parse_script({"conversations": [conversation]}))
    assert main(["-C", str(repo), "plan", request, "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [(t["id"], t["deps"], t["tier"]) for t in data["tasks"]] == [
        ("csv_export", [], "small"),
        ("low_stock", [], "medium"),
        ("cli", ["csv_export", "low_stock"], "large"),
        ("docs", ["cli"], "small"),
    ]
    assert all(t["model"].startswith("anthropic:") and t["estimated_cost_usd"] > 0
               for t in data["tasks"])  # fmt: skip
    assert data["critical_path"] == ["low_stock", "cli", "docs"]
    assert data["generations"] == [["csv_export", "low_stock"], ["cli"], ["docs"]]
    # The planner saw the example's code: its symbol map went out in the first request.
    first = json.dumps(model_server.requests[0].body)
    assert "inventory/store.py: class Item; class Inventory(" in first
    assert "Test command: python -m pytest" in first
