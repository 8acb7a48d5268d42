"""How remedies shape the next attempt."""

from __future__ import annotations

from karma.heal import Evidence, Remedy
from karma.heal.treatment import Recheck, Treatment

EVIDENCE = Evidence.from_log("FAILED tests/test_x.py::test_y - assert 1 == 2", step="test")


def test_escalate_model_moves_one_tier_up_and_stops_at_large() -> None:
    up = Remedy("escalate_model", "standard", "use a stronger model", escalate_model=True)
    first = Treatment("small").after(up, "b", EVIDENCE)
    assert first.tier == "medium"
    assert first.after(up, "b", EVIDENCE).after(up, "b", EVIDENCE).tier == "large"


def test_factors_multiply_and_hints_accumulate() -> None:
    memory = Remedy("raise_memory", "standard", "more memory", memory_factor=1.5)
    time = Remedy("raise_timeout", "standard", "more time", timeout_factor=1.5)
    treatment = Treatment("small").after(memory, None, EVIDENCE).after(memory, None, EVIDENCE)
    treatment = treatment.after(time, None, EVIDENCE)
    assert treatment.memory_factor == 2.25 and treatment.timeout_factor == 1.5
    assert treatment.hints == ("more memory", "more memory", "more time")
    assert treatment.recheck is None


def test_rerun_and_quarantine_continue_the_failed_attempt() -> None:
    rerun = Remedy("rerun_failed_tests", "immediate", "rerun", rerun_failed_tests=True)
    assert Treatment("small").after(rerun, "karma-work/r/t-1", EVIDENCE).recheck == Recheck(
        "karma-work/r/t-1", EVIDENCE.output_tail, quarantine=False
    )
    quarantine = Remedy("quarantine_flaky_test", "elevated", "skip it",
                        quarantine_flaky_test=True)  # fmt: skip
    recheck = Treatment("small").after(quarantine, "b", EVIDENCE).recheck
    assert recheck is not None and recheck.quarantine
    # the next ordinary remedy starts from the build branch again
    hint = Remedy("retry_with_hint", "immediate", "hint")
    assert (
        Treatment("small").after(quarantine, "b", EVIDENCE).after(hint, "c", EVIDENCE).recheck
        is None
    )
