"""The pattern table compiled for speed, and classification of evidence against it.

Every pattern whose hard conditions hold (exit code, sandbox limit, `all`, `exclude`)
and whose output regexes hit scores its recipe confidence, plus small bonuses for a
matching tool or step and for more than one regex hitting. The best pattern wins; the
best pattern of another class is the runner-up, and the closer it scores the lower the
winner's confidence. A precedence rule (`karma.heal.precedence`, learned out of fold)
may then hand the win to a root cause whose pattern matched beside its symptom's.

Patterns decide when they are sure (`PATTERN_SURE`). Otherwise - nothing matched, or the
best match is unsure - the learned model (`karma.heal.model`) scores every class from the
key lines and the non-text evidence, and decides if its probability reaches the model's
threshold; below it the answer is `unknown`: a decision, not a fallback. A model decision
carries the first pattern of its class (its hint and remediations) and says so in
`decided_by`.

Speed (>= 500 logs/s of 20 KB): regexes are *line* regexes, each with literals it
cannot match without (`karma.heal.scan`); all of them are found in one pass over the
log, only the patterns with a literal present are scored, and a regex runs only on the
lines holding its literals. The last `WINDOW` characters are classified first (from
the same hits); the whole tail only when that gives no confident answer.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from karma.heal.evidence import Evidence
from karma.heal.precedence import MAX_CHAIN, Precedence, PrecedenceRule, builtin_precedence
from karma.heal.scan import Hits, LineRegex, LiteralScan
from karma.heal.signature import MAX_KEY_LINES, key_lines, signature
from karma.recipes import FailureClass, FailurePattern

if TYPE_CHECKING:
    from karma.heal.model import ClassModel

TOOL_BONUS = 0.06
STEP_BONUS = 0.03
EXTRA_HIT_BONUS = 0.03
MAX_CONFIDENCE = 0.99
PATTERN_SURE = 0.7
"""A pattern at least this confident decides alone; below, the model is asked."""
MODEL_PREFIX = "model:"


@dataclass(frozen=True)
class RunnerUp:
    failure_class: FailureClass
    pattern_id: str
    confidence: float


@dataclass(frozen=True)
class Classification:
    failure_class: FailureClass
    pattern_id: str
    confidence: float
    runner_up: RunnerUp | None
    signature: str
    key_lines: tuple[str, ...]
    decided_by: Literal["pattern", "model", "threshold"] = "pattern"
    """Who decided: a sure pattern, the model, or the model's threshold (-> unknown)."""
    flakiness: float = 0.0
    """0..1: how much the output suggests a flaky test (see karma.heal.flaky)."""
    matched: tuple[tuple[FailureClass, str], ...] = ()
    """(class, pattern id) of every pattern that matched, best first: the model reads
    them as evidence, `--explain` shows them; not in `to_json`."""
    precedence: tuple[PrecedenceRule, ...] = ()
    """The precedence rules by which the winning pattern's class beat the best-scoring one."""

    def to_json(self) -> dict[str, Any]:
        runner = self.runner_up
        return {
            "class": self.failure_class,
            "pattern": self.pattern_id,
            "confidence": round(self.confidence, 3),
            "runner_up": None if runner is None else {
                "class": runner.failure_class, "pattern": runner.pattern_id,
                "confidence": round(runner.confidence, 3)},
            "signature": self.signature,
            "key_lines": list(self.key_lines),
            "decided_by": self.decided_by,
            "flakiness": round(self.flakiness, 3),
            "precedence": [{"cause": r.cause, "symptom": r.symptom, "when": r.when}
                           for r in self.precedence],
        }  # fmt: skip


WINDOW = 6_000
WINDOW_CONFIDENCE = 0.8


class _Compiled:
    """One pattern with its regexes compiled once."""

    def __init__(self, pattern: FailurePattern) -> None:
        self.pattern = pattern
        self.output = tuple(LineRegex(rx) for rx in pattern.match.output)
        self.all = tuple(LineRegex(rx) for rx in pattern.match.all)
        self.exclude = tuple(LineRegex(rx) for rx in pattern.match.exclude)

    @cached_property
    def is_fallback(self) -> bool:
        m = self.pattern.match
        return not (m.output or m.all or m.exit_codes or m.limit)

    def possible(self, hits: Hits) -> bool:
        """False when the text lacks the literals this pattern's regexes need."""
        if self.output and not any(regex.possible(hits) for regex in self.output):
            return False
        return all(regex.possible(hits) for regex in self.all)

    def all_spans(self, text: str, hits: Hits, limit: int = MAX_KEY_LINES) -> list[tuple[int, int]]:
        spans: list[tuple[int, int]] = []
        for regex in (*self.output, *self.all):
            for hit in regex.matches(text, hits):
                spans.append(hit.span())
                if len(spans) >= limit * 2:
                    return spans
        return spans

    def score(
        self, evidence: Evidence, text: str, hits: Hits
    ) -> tuple[float, list[tuple[int, int]]] | None:
        m = self.pattern.match
        if m.limit is not None and evidence.limit != m.limit:
            return None
        if m.exit_codes and evidence.exit_code not in m.exit_codes:
            return None
        spans: list[tuple[int, int]] = []
        for regex in self.output:
            hit = regex.search(text, hits)
            if hit is not None:
                spans.append(hit.span())
        if self.output and not spans:
            return None
        for regex in self.all:
            hit = regex.search(text, hits)
            if hit is None:
                return None
            spans.append(hit.span())
        if any(regex.search(text, hits) for regex in self.exclude):
            return None
        score = self.pattern.confidence + EXTRA_HIT_BONUS * min(len(spans) - 1, 1)
        if evidence.tool and evidence.tool in m.tools:
            score += TOOL_BONUS
        if evidence.step in m.steps:
            score += STEP_BONUS
        return score, spans


_Scored = tuple[float, int, _Compiled, list[tuple[int, int]]]


class PatternTable:
    """The failure patterns in recipe order, compiled; `classify` is the hot path."""

    def __init__(
        self,
        patterns: list[FailurePattern],
        model: ClassModel | Literal["builtin"] | None = "builtin",
        precedence: Precedence | Literal["builtin"] | None = "builtin",
    ) -> None:
        self._model = model
        if precedence == "builtin":
            precedence = builtin_precedence()
        self.precedence = precedence or None
        self._compiled = [_Compiled(p) for p in patterns]
        fallbacks = [c for c in self._compiled if c.is_fallback]
        if not fallbacks:
            raise ValueError("the pattern table needs a fallback pattern of class 'unknown'")
        self.fallback = fallbacks[0].pattern
        self._matchers = [c for c in self._compiled if not c.is_fallback]
        self.by_id = {c.pattern.id: c.pattern for c in self._compiled}
        for compiled in reversed(self._matchers):  # the first pattern of each class is its recipe
            self.by_id[f"{MODEL_PREFIX}{compiled.pattern.klass}"] = compiled.pattern
        self.by_id[f"{MODEL_PREFIX}unknown"] = self.fallback
        # Each pattern under the literals of its output/all regexes: a pattern none of
        # whose literals is in a log is not looked at; one with a regex needing none always is.
        self._by_literal: dict[str, list[int]] = {}
        self._unindexed: set[int] = set()
        for order, compiled in enumerate(self._matchers):
            regexes = (*compiled.output, *compiled.all)
            if not regexes or any(not regex.needs for regex in regexes):
                self._unindexed.add(order)
            for literal in {lit for regex in regexes for lit in regex.needs}:
                self._by_literal.setdefault(literal, []).append(order)
        self._scan = LiteralScan(
            lit
            for c in self._matchers
            for rx in (*c.output, *c.all, *c.exclude)
            for lit in rx.needs
        )

    @property
    def model(self) -> ClassModel | None:
        """The learned layer; the built-in one is loaded on first use (~50 ms), not at start."""
        if self._model == "builtin":
            from karma.heal.model import builtin_model

            self._model = builtin_model()
        return self._model

    @property
    def patterns(self) -> list[FailurePattern]:
        return [c.pattern for c in self._compiled]

    def classify(self, evidence: Evidence) -> Classification:
        """The class of a failure: a sure pattern, else the model, else `unknown`."""
        from karma.heal.flaky import flakiness

        result = self.classify_patterns(evidence)
        matched = result.pattern_id != self.fallback.id
        # What this repository learned from outcomes (recipes/learned/) is never overruled.
        sure = matched and (result.confidence >= PATTERN_SURE or self._learned(result.pattern_id))
        if not sure and self.model is not None:
            result = self._ask_model(evidence, result)
        if result.failure_class not in ("test_failure", "flaky_test", "timeout"):
            return result  # flakiness qualifies test failures only; no work for the others
        score = flakiness(evidence)
        return replace(result, flakiness=score) if score else result

    def _learned(self, pattern_id: str) -> bool:
        source = self.by_id[pattern_id].source if pattern_id in self.by_id else None
        return source is not None and "learned" in Path(source).parts

    def _ask_model(self, evidence: Evidence, result: Classification) -> Classification:
        from karma.heal.model import model_lines

        model = self.model
        assert model is not None
        guess = model.predict(evidence, model_lines(evidence), result)
        chosen = self.by_id.get(f"{MODEL_PREFIX}{guess.failure_class}")
        lines = key_lines(evidence.output_tail)  # the signature's lines, as the patterns hash them
        shown = result.key_lines or tuple(lines)
        if guess.probability < model.threshold or chosen is None:
            fallback = self.fallback
            return Classification(
                fallback.klass, fallback.id, round(1 - guess.probability, 4),
                RunnerUp(guess.failure_class, f"{MODEL_PREFIX}{guess.failure_class}",  # type: ignore[arg-type]
                         round(guess.probability, 4)),
                signature(fallback.klass, fallback.id, lines), shown, "threshold",
                matched=result.matched,
            )  # fmt: skip
        runner = None
        if guess.runner_up is not None:
            runner = RunnerUp(guess.runner_up, f"{MODEL_PREFIX}{guess.runner_up}",  # type: ignore[arg-type]
                              round(guess.runner_up_probability, 4))  # fmt: skip
        rule = None
        if self.precedence is not None:
            rule = self.precedence.overrule_decision(chosen.klass, (k for k, _ in result.matched))
        if rule is not None:
            # The model chose a symptom whose cause's pattern matched too: the cause's
            # pattern (the best of its class) decides, at the model's confidence.
            cause = next(self.by_id[i] for k, i in result.matched if k == rule.cause)
            runner = RunnerUp(chosen.klass, f"{MODEL_PREFIX}{chosen.klass}",
                              round(guess.probability, 4))  # fmt: skip
            return Classification(
                cause.klass, cause.id, round(guess.probability, 4), runner,
                signature(cause.klass, cause.id, lines), shown, "model",
                matched=result.matched, precedence=(rule,),
            )  # fmt: skip
        # `model:<class>` in the record: the healing memory and reflection can tell a
        # learned guess from a pattern's match; `by_id` maps it to the class's recipe.
        model_id = f"{MODEL_PREFIX}{chosen.klass}"
        confidence = guess.probability
        if chosen.klass == self.fallback.klass:
            # Sure it is none of the classes is not sure of a remedy: the tiers read the
            # confidence, and `unknown` never licenses more than its fallback pattern does.
            confidence = min(confidence, self.fallback.confidence)
        return Classification(
            chosen.klass, model_id, round(confidence, 4), runner,
            signature(chosen.klass, model_id, lines), shown, "model",
            matched=result.matched,
        )  # fmt: skip

    def classify_patterns(self, evidence: Evidence) -> Classification:
        """The patterns' answer alone; the end of the log is read first, the whole tail if needed.

        Tools print their verdict last, so a confident match in the last `WINDOW`
        characters stands; otherwise (no match, or an unsure one) the whole output tail
        is classified. The literals are found once, in the whole tail; the window reuses
        the hits past its start.
        """
        text = evidence.output_tail
        hits = self._scan.scan(text)
        if len(text) > WINDOW * 1.25:
            cut = text.find("\n", len(text) - WINDOW) + 1 or len(text) - WINDOW
            window = hits.since(cut)
            scored = self._score(evidence, text, window)
            result = self._result(text, window, scored) if scored else None
            if result is not None and result.confidence >= WINDOW_CONFIDENCE:
                return result
        return self._result(text, hits, self._score(evidence, text, hits))

    def _score(self, evidence: Evidence, text: str, hits: Hits) -> list[_Scored]:
        scored: list[_Scored] = []
        # Only the patterns one of whose literals is in the text (or that need none).
        candidates = {i for lit in hits.starts for i in self._by_literal.get(lit, ())}
        for order in sorted(candidates.union(self._unindexed)):
            compiled = self._matchers[order]
            if not compiled.possible(hits):
                continue
            result = compiled.score(evidence, text, hits)
            if result is not None:
                scored.append((result[0], -order, compiled, result[1]))
        return scored

    def _result(self, text: str, hits: Hits, scored: list[_Scored]) -> Classification:
        if not scored:
            lines = key_lines(text)
            fallback = self.fallback
            return Classification(
                fallback.klass, fallback.id, fallback.confidence, None,
                signature(fallback.klass, fallback.id, lines), tuple(lines),
            )  # fmt: skip
        scored.sort(key=lambda item: (item[0], item[1]), reverse=True)
        top, applied = self._precede(scored)
        best_score, _, best, spans = top
        own = {best.pattern.klass, *best.pattern.specialises, *(r.symptom for r in applied)}
        rival = next((s for s in scored if s[2].pattern.klass not in own), None)
        second = rival or next(
            (s for s in scored if s[2].pattern.klass != best.pattern.klass), None
        )
        confidence = min(best_score, MAX_CONFIDENCE)
        if rival is not None:
            # A rival as strong as the winner halves the confidence; a weak one barely dents it.
            confidence *= 1 - 0.5 * (min(rival[0], best_score) / best_score) ** 4
        runner_up = None
        if second is not None:
            runner_up = RunnerUp(
                second[2].pattern.klass, second[2].pattern.id, min(second[0], MAX_CONFIDENCE)
            )
        # The signature hashes the first line each regex hits (stable across files and
        # counts); the report shows more of the lines the winning pattern recognises.
        first = key_lines(text, spans) if spans else key_lines(text)
        shown = key_lines(text, best.all_spans(text, hits)) if spans else first
        pattern = best.pattern
        return Classification(
            pattern.klass, pattern.id, round(confidence, 4), runner_up,
            signature(pattern.klass, pattern.id, first), tuple(shown),
            matched=tuple((s[2].pattern.klass, s[2].pattern.id) for s in scored),
            precedence=applied,
        )  # fmt: skip

    def _precede(self, scored: list[_Scored]) -> tuple[_Scored, tuple[PrecedenceRule, ...]]:
        """The winner after precedence: the best-scoring pattern, or a cause's that beats it."""
        top = scored[0]
        if self.precedence is None or len(scored) == 1:
            return top, ()
        best_of: dict[str, _Scored] = {}
        firsts: dict[str, int | None] = {}
        for entry in scored:  # best first: the first entry of a class is its best
            klass = entry[2].pattern.klass
            best_of.setdefault(klass, entry)
            first = min((start for start, _ in entry[3]), default=None)
            earlier = firsts.get(klass)
            firsts[klass] = first if earlier is None or first is None else min(earlier, first)
            if first is None and earlier is not None:
                firsts[klass] = earlier
        applied: list[PrecedenceRule] = []
        for _ in range(MAX_CHAIN):
            klass = top[2].pattern.klass
            last = max((start for start, _ in top[3]), default=None)
            others = {k: v for k, v in firsts.items() if k != klass}
            rule = self.precedence.overrule(klass, last, others)
            if rule is None:
                break
            applied.append(rule)
            top = best_of[rule.cause]
        return top, tuple(applied)
