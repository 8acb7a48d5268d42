"""Decisions: retry budget, no identical repeat, loop guard, the policy cascade, learning."""

from __future__ import annotations

from collections.abc import Callable

from karma.heal import AttemptRecord, Escalation, Healer, Remedy
from tests.heal.conftest import PYTEST_FAIL, evidence

Make = Callable[..., Healer]
FLAKY = PYTEST_FAIL.replace("1 failed, 2 passed", "1 failed, 2 passed, 2 rerun")
OOM = ("", "memory")


def attempt(
    healer: Healer, text: str, number: int, remediation: str | None, **kw: object
) -> AttemptRecord:
    ev = evidence(text, **kw)  # type: ignore[arg-type]
    return AttemptRecord(number, ev, healer.classify(ev), remediation)  # type: ignore[arg-type]


def test_oom_raises_memory(make_healer: Make) -> None:
    healer = make_healer(chooser="ordered")
    cls = healer.classify(evidence("", limit="memory", exit_code=137))
    decision = healer.decide("t1", cls, [])
    assert isinstance(decision, Remedy)
    assert decision.name == "raise_memory" and decision.memory_factor == 1.5
    assert "out_of_memory" in decision.hint


def test_retries_run_out(make_healer: Make) -> None:
    healer = make_healer(max_retries=2)
    history = [attempt(healer, PYTEST_FAIL, n, "retry_with_hint") for n in (1, 2)]
    decision = healer.decide("t1", history[-1].classification, history)
    assert isinstance(decision, Escalation) and decision.reason == "retries_exhausted"


def test_no_two_identical_in_a_row(make_healer: Make) -> None:
    healer = make_healer(chooser="ordered")
    first = attempt(healer, PYTEST_FAIL, 1, "retry_with_hint", tool="pytest")
    decision = healer.decide("t1", first.classification, [first])
    assert isinstance(decision, Remedy) and decision.name != "retry_with_hint"


def test_loop_guard_across_the_run(make_healer: Make) -> None:
    healer = make_healer(chooser="ordered", loop_guard=1)
    cls = healer.classify(evidence("E   SyntaxError: invalid syntax\n"))
    names = []
    for task in ("a", "b", "c"):
        decision = healer.decide(task, cls, [])
        names.append(decision.name if isinstance(decision, Remedy) else decision.reason)
    assert names == ["retry_with_hint", "escalate_model", "loop_guard"]


def test_low_confidence_takes_the_safer_action(make_healer: Make) -> None:
    # standard tier needs more confidence than any classification has: the cascade falls
    # back to an immediate remedy, and escalates when there is none.
    healer = make_healer(chooser="ordered", standard={"min_confidence": 1.0})
    oom = healer.classify(evidence("", limit="memory", exit_code=137))
    decision = healer.decide("t1", oom, [])
    assert isinstance(decision, Remedy) and decision.name == "retry_with_hint"
    healer = make_healer(chooser="ordered", standard={"min_confidence": 1.0},
                         immediate={"min_confidence": 1.0})  # fmt: skip
    decision = healer.decide("t1", oom, [])
    assert isinstance(decision, Escalation) and decision.reason == "low_confidence"


def test_unknown_failure_never_gets_a_standard_remedy_by_default(make_healer: Make) -> None:
    healer = make_healer(chooser="ordered")
    cls = healer.classify(evidence("something odd happened\n"))
    assert cls.failure_class == "unknown" and cls.confidence < 0.5
    seen = set()
    history: list[AttemptRecord] = []
    for n in range(1, 4):
        decision = healer.decide("t1", cls, history)
        if isinstance(decision, Escalation):
            break
        seen.add(decision.name)
        history.append(AttemptRecord(n, evidence("x"), cls, decision.name))
    assert "escalate_model" not in seen


def test_elevated_quarantine_notifies_and_needs_confidence(make_healer: Make) -> None:
    healer = make_healer(chooser="ordered")
    first = attempt(healer, FLAKY, 1, "rerun_failed_tests", tool="pytest")
    decision = healer.decide("t1", first.classification, [first])
    assert isinstance(decision, Remedy) and decision.name == "quarantine_flaky_test"
    assert decision.tier == "elevated" and decision.quarantine_flaky_test


def test_approval_by_config_escalates_with_proposal(make_healer: Make) -> None:
    healer = make_healer(chooser="ordered", elevated={"approval": True})
    first = attempt(healer, FLAKY, 1, "rerun_failed_tests", tool="pytest")
    decision = healer.decide("t1", first.classification, [first])
    assert isinstance(decision, Escalation) and decision.reason == "needs_approval"
    assert decision.remediation == "quarantine_flaky_test"


def test_critical_remediation_goes_to_a_human(make_healer: Make) -> None:
    healer = make_healer(chooser="ordered", max_retries=10, loop_guard=1)
    text = "dial tcp 127.0.0.1:9: connect: connection refused\n"
    history: list[AttemptRecord] = []
    decision = None
    for n in range(1, 8):
        decision = healer.decide("t1", healer.classify(evidence(text, step="install")), history)
        if isinstance(decision, Escalation):
            break
        history.append(attempt(healer, text, n, decision.name, step="install"))
    assert isinstance(decision, Escalation) and decision.reason == "needs_approval"
    assert decision.remediation == "edit_ci_workflow" and decision.proposal


def test_failed_remediation_counts_as_an_attempt(make_healer: Make) -> None:
    healer = make_healer(max_retries=1)
    text = "ERROR: No matching distribution found for requests==99.0.0\n"
    cls = healer.classify(evidence(text, step="install", tool="pip"))
    failed = AttemptRecord(1, evidence(text), cls, "regenerate_lockfile", "failed",
                           "rm -f poetry.lock && poetry lock: failed (exit 1)")  # fmt: skip
    healer.record_outcome(cls, "regenerate_lockfile", "failed", task_id="t1",
                          side_effects=failed.detail)  # fmt: skip
    decision = healer.decide("t1", cls, [failed])
    assert isinstance(decision, Escalation) and decision.reason == "retries_exhausted"
    rows = healer.store.outcomes() if healer.store else []
    assert rows[-1]["outcome"] == "failed" and "poetry lock" in rows[-1]["side_effects"]


def test_outcomes_change_the_choice(make_healer: Make) -> None:
    healer = make_healer(chooser="thompson", loop_guard=100)
    cls = healer.classify(evidence("", limit="memory", exit_code=137))
    for _ in range(30):
        healer.record_outcome(cls, "raise_memory", "failed")
        healer.record_outcome(cls, "retry_with_hint", "resolved")
    picks = []
    for n in range(20):
        decision = healer.decide(f"t{n}", cls, [])
        assert isinstance(decision, Remedy)
        picks.append(decision.name)
    assert picks.count("retry_with_hint") >= 18
    # a fresh healer on the same store learns the same from the recorded outcomes
    again = Healer(healer.store, healer.config, healer.table, max_retries=3)
    ranked = again.learner.rank(healer.pattern(cls))
    assert ranked[0].name == "retry_with_hint"


def test_recall_gives_prevention_hints(make_healer: Make) -> None:
    healer = make_healer()
    ev = evidence("src/app.py:3: error: Incompatible types in assignment  [assignment]\n",
                  step="typecheck", tool="mypy")  # fmt: skip
    healer.observe(ev, healer.classify(ev), files=["src/app.py"], kind="feature")
    assert any("Annotate" in h for h in healer.recall(["src/app.py"], None))
    assert healer.recall(["other.py"], "feature")
    assert healer.recall(["other.py"], "docs") == []


def test_a_flaky_looking_test_failure_is_rerun_first(make_healer: Make) -> None:
    # Classified as the test failure it shows; the flakiness signals (a port in use, a
    # timing error) put the rerun first, and its verdict is what gets recorded.
    text = PYTEST_FAIL.replace(
        "E       assert -1 == 5",
        "E       OSError: [Errno 98] Address already in use\nE       TimeoutException: "
        "timed out waiting for the server",
    )
    healer = make_healer(chooser="ordered")
    cls = healer.classify(evidence(text, step="test", tool="pytest"))
    assert cls.flakiness >= 0.5
    decision = healer.decide("t1", cls, [])
    assert isinstance(decision, Remedy) and decision.name == "rerun_failed_tests"
    plain = healer.classify(evidence(PYTEST_FAIL, step="test", tool="pytest"))
    assert plain.flakiness == 0
    first = healer.decide("t1", plain, [])
    assert isinstance(first, Remedy) and first.name == "retry_with_hint"


def test_a_remedy_that_cannot_work_in_the_sandbox_is_not_offered(make_healer: Make) -> None:
    healer = make_healer(chooser="ordered")
    text = "E   ModuleNotFoundError: No module named 'calc'\n"
    first = attempt(healer, text, 1, "retry_with_hint", tool="pytest")
    offered = healer.decide("t1", first.classification, [first])
    assert isinstance(offered, Remedy) and offered.name == "reinstall_dependencies"
    held_back = healer.decide(
        "t1", first.classification, [first], unavailable=frozenset({"reinstall_dependencies"})
    )
    assert isinstance(held_back, Remedy) and held_back.name == "escalate_model"
