"""Precedence between classes: a root cause beats its symptom, as learned data, explained.

The logs are real CI logs of the public train split (the rules were learned on it); the
table's file is built-in only and is attacked here: malformed, cyclic, unknown classes,
and a repository shipping its own copy.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from karma.cli import main
from karma.errors import RecipeError
from karma.heal import Evidence, PatternTable
from karma.heal.precedence import (
    PRECEDENCE_FILE,
    Precedence,
    PrecedenceRule,
    builtin_precedence,
    load_precedence,
)
from karma.recipes import load_failure_patterns

PUBLIC = Path(__file__).resolve().parents[1] / "golden" / "failures" / "public"
# javac's "incompatible types" (type_error) above Maven's compilation failure (compile_error).
TYPE_OVER_COMPILE = "cidiff/breakages-npefix_1847"
# An out-of-memory pattern wins, unsure, beside a test pattern; the model decides (test_failure).
MODEL_DECIDES = "bugswarm/google@error-prone/71c8962d0af6562de730d5e96f4e88d4959f860e-4-2"


def train_log(log_id: str) -> dict[str, str]:
    for line in (PUBLIC / "train.jsonl").open():
        row = json.loads(line)
        if row["id"] == log_id:
            return row  # type: ignore[no-any-return]
    raise AssertionError(log_id)


def test_the_builtin_table_is_what_the_learner_keeps() -> None:
    table = builtin_precedence()
    assert table is not None and table.rules
    for rule in table.rules:  # kept only if it made no train log wrong and some right
        assert rule.cause != rule.symptom and rule.fixed > 0 and rule.broken == 0
        assert rule.fired >= rule.fixed and rule.repos >= 1


def test_a_cause_beats_its_symptoms_winning_pattern_and_says_why() -> None:
    row = train_log(TYPE_OVER_COMPILE)
    evidence = Evidence.from_log(row["log"], tool=row["tool"])
    patterns = load_failure_patterns()
    by_score = PatternTable(patterns, model=None, precedence=None).classify_patterns(evidence)
    assert by_score.failure_class == "compile_error"
    result = PatternTable(patterns, model=None).classify_patterns(evidence)
    assert result.failure_class == "type_error" == row["label"]
    assert [(r.cause, r.symptom) for r in result.precedence] == [("type_error", "compile_error")]
    assert result.runner_up is not None and result.runner_up.failure_class == "compile_error"
    # The symptom's match is expected, not ambiguity: the cause's confidence is not halved.
    assert result.confidence > by_score.confidence * 0.9
    data = result.to_json()
    assert data["precedence"] == [{"cause": "type_error", "symptom": "compile_error",
                                   "when": result.precedence[0].when}]  # fmt: skip


def test_a_rule_overrules_the_models_choice_of_the_symptom() -> None:
    row = train_log(MODEL_DECIDES)
    evidence = Evidence.from_log(row["log"], tool=row["tool"])
    patterns = load_failure_patterns()
    plain = PatternTable(patterns, precedence=None).classify(evidence)
    assert plain.decided_by == "model" and plain.failure_class == "test_failure"
    assert "out_of_memory" in {k for k, _ in plain.matched}
    # A rule the learner would not keep (the label is test_failure): the mechanism only.
    rule = PrecedenceRule(cause="out_of_memory", symptom="test_failure")
    result = PatternTable(patterns, precedence=Precedence([rule])).classify(evidence)
    assert result.failure_class == "out_of_memory" and result.decided_by == "model"
    assert result.precedence == (rule,) and not result.pattern_id.startswith("model:")
    assert result.runner_up is not None and result.runner_up.failure_class == "test_failure"
    # A `before` rule needs the matched lines, which the model's decision does not have.
    before = rule.model_copy(update={"when": "before"})
    kept = PatternTable(patterns, precedence=Precedence([before])).classify(evidence)
    assert kept.failure_class == "test_failure" and kept.precedence == ()


def test_explain_and_json_name_the_precedence(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    row = train_log(TYPE_OVER_COMPILE)
    log = tmp_path / "ci.log"
    log.write_text(row["log"])
    assert main(["-C", str(tmp_path), "classify", str(log), "--explain", "--tool", "maven"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("type_error") and "precedence: type_error over compile_error" in out
    assert "learned out of fold on train" in out and "runner-up: compile_error" in out
    assert main(["-C", str(tmp_path), "classify", str(log), "--json", "--tool", "maven"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["class"] == "type_error" and data["precedence"][0]["symptom"] == "compile_error"


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        '{"rules": [{"cause": "type_error", "symptom": "compile_error", "run": "x"}]}',
        '{"rules": [{"cause": "rm -rf /", "symptom": "compile_error"}]}',
        '{"rules": [{"cause": "type_error", "symptom": "type_error"}]}',
        '{"rules": [{"cause": "type_error", "symptom": "compile_error"},'
        ' {"cause": "compile_error", "symptom": "lint_error"},'
        ' {"cause": "lint_error", "symptom": "type_error"}]}',
        '{"rules": [{"cause": "type_error", "symptom": "compile_error", "when": "always"}]}',
        '{"rules": "all"}',
    ],
)
def test_a_malformed_table_is_a_recipe_error_naming_the_file(tmp_path: Path, text: str) -> None:
    path = tmp_path / "failure_precedence.json"
    path.write_text(text)
    with pytest.raises(RecipeError, match=r"failure_precedence\.json"):
        load_precedence(path)


def test_a_repository_cannot_ship_its_own_table(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # Trust: the table steers healing, so only the built-in copy is read; a target
    # repository's (here one that would flip the class, or break loading) is ignored.
    models = tmp_path / ".karma" / "recipes" / "models"
    models.mkdir(parents=True)
    (models / Path(PRECEDENCE_FILE).name).write_text(
        '{"rules": [{"cause": "compile_error", "symptom": "type_error"}]}'
    )
    (models / "failure_classifier.json").write_text("{broken")
    row = train_log(TYPE_OVER_COMPILE)
    log = tmp_path / "ci.log"
    log.write_text(row["log"])
    assert main(["-C", str(tmp_path), "classify", str(log), "--json", "--tool", "maven"]) == 0
    assert json.loads(capsys.readouterr().out)["class"] == "type_error"
