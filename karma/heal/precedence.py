"""Which class wins when the patterns of a root cause and of its symptom both match.

A log shows a failure's cause and its symptoms: a syntax error is reported by the linter
that could not parse the file, a type error by the compiler, a network error makes the
install or the tests fail and the runner says so. The corpus labels name the cause, while
the pattern table ranks by score, and the symptom's pattern (a runner's summary) is often
the stronger. A precedence rule says: when the best pattern is the `symptom`'s and a
pattern of the `cause` matched too (for `when: before`, on a line before the symptom's
last one), the cause's pattern wins and the symptom's match is expected, not ambiguity.
The same holds when the patterns were unsure and the learned model chose the symptom:
a `both` rule hands the decision to the cause's pattern (a `before` rule needs the
matched lines, which only the pattern layer has, and does not overrule the model).

The rules are data, learned by `bench/retrain_classifier.py` out of fold on the train
split (folds by repository): a rule is kept only if, out of fold, it made no train log
wrong and made some right. Each rule carries those counts, so `karma classify --explain`
can say why the cause won. Built-in only (`recipes/models/failure_precedence.json`), as
the model is: a target repository cannot ship a rule that steers its own healing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from karma.errors import RecipeError
from karma.recipes import FailureClass

PRECEDENCE_FILE = "models/failure_precedence.json"
MAX_CHAIN = 4
"""A cause may itself be the symptom of another cause; no chain is longer than this."""


class PrecedenceRule(BaseModel):
    """`cause` beats `symptom` when both match, with what it did out of fold on train."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cause: FailureClass
    symptom: FailureClass
    when: Literal["both", "before"] = "both"
    """`both`: both matched; `before`: and the cause's first line precedes the symptom's last."""
    fired: int = 0
    """Train logs (out of fold) where the rule applied."""
    fixed: int = 0
    """Of those, the logs it made right (wrong without it)."""
    broken: int = 0
    """Of those, the logs it made wrong (right without it)."""
    repos: int = 0
    """The repositories of the fixed logs."""

    def describe(self) -> str:
        where = " on an earlier line" if self.when == "before" else ""
        return (f"{self.cause} over {self.symptom}: a {self.cause} pattern matched{where} as "
                f"well, and the cause wins (learned out of fold on train: applied to "
                f"{self.fired} logs, made {self.fixed} right in {self.repos} repositories, "
                f"{self.broken} wrong)")  # fmt: skip


class _PrecedenceFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    rules: tuple[PrecedenceRule, ...]
    meta: dict[str, Any] = {}


class Precedence:
    """The rules, indexed by symptom; `overrule` is on the classifier's hot path."""

    def __init__(self, rules: Iterable[PrecedenceRule]) -> None:
        self.rules = tuple(rules)
        self._by_symptom: dict[str, list[PrecedenceRule]] = {}
        for rule in self.rules:
            if rule.cause == rule.symptom:
                raise ValueError(f"precedence rule {rule.cause} over itself")
            self._by_symptom.setdefault(rule.symptom, []).append(rule)
        for rule in self.rules:
            if self._reaches(rule.cause, rule.symptom, set()):
                raise ValueError(f"precedence rules form a cycle through {rule.cause}")

    def _reaches(self, symptom: str, target: str, seen: set[str]) -> bool:
        # A cycle: some rule's symptom can be beaten, transitively, by the class it beats.
        for rule in self._by_symptom.get(symptom, ()):
            if rule.cause == target or (
                rule.cause not in seen and self._reaches(rule.cause, target, seen | {rule.cause})
            ):
                return True
        return False

    def __bool__(self) -> bool:
        return bool(self.rules)

    def overrule(
        self, winner: str, winner_last: int | None, firsts: Mapping[str, int | None]
    ) -> PrecedenceRule | None:
        """The first rule by which a matched class beats `winner`, or None.

        `winner_last` is the offset of the winner's last matched line, `firsts` maps each
        other matched class to the offset of its first; None is a match on no line (an
        exit code or a limit alone), which has no position and satisfies `before`.
        """
        for rule in self._by_symptom.get(winner, ()):
            if rule.cause not in firsts:
                continue
            first = firsts[rule.cause]
            if rule.when == "both" or first is None or winner_last is None or first < winner_last:
                return rule
        return None

    def overrule_decision(self, decided: str, matched: Iterable[str]) -> PrecedenceRule | None:
        """The first `both` rule by which a matched class beats the model's decision."""
        present = set(matched)
        for rule in self._by_symptom.get(decided, ()):
            if rule.when == "both" and rule.cause in present:
                return rule
        return None

    def to_json(self, meta: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return {"rules": [r.model_dump() for r in self.rules], "meta": dict(meta or {})}


def load_precedence(path: Path) -> Precedence:
    """The rules in `path`; malformed data is a `RecipeError` naming the file."""
    try:
        data = _PrecedenceFile.model_validate(json.loads(path.read_text(encoding="utf-8")))
        return Precedence(data.rules)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, ValidationError, ValueError) as exc:
        raise RecipeError(f"{path}: malformed precedence table: {exc}") from None


@cache
def builtin_precedence() -> Precedence | None:
    """The table shipped with KARMA; None when the data file is absent (score order only)."""
    from karma.home import builtin_dir

    path = builtin_dir("recipes") / PRECEDENCE_FILE
    return load_precedence(path) if path.is_file() else None
