"""Reflection: recurring unknown failures become a reviewed, validated learned pattern."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from karma.heal import Healer
from karma.heal.reflect import clusters, learned_file, propose, render
from karma.home import DataRoots
from karma.models.script import parse_script
from karma.models.scripted import ScriptedModel
from karma.recipes import load_failure_patterns
from tests.heal.conftest import evidence

WIDGET = [
    "widgetc: stage {n} aborted: frobnicator quota exceeded for shard {n}\nwidgetc: giving up\n",
    "widgetc: stage {n} aborted: frobnicator quota exceeded for shard {n}\n",
]


def seed(healer: Healer) -> None:
    for n, template in enumerate(WIDGET * 2):
        ev = evidence(template.format(n=n + 3), step="build")
        healer.observe(ev, healer.classify(ev), files=[f"src/m{n}.py"])
    other = evidence("app.py:1: error: Incompatible types in assignment  [assignment]\n",
                     step="typecheck", tool="mypy")  # fmt: skip
    healer.observe(other, healer.classify(other))


def test_recurring_unknowns_are_clustered(make_healer: Callable[..., Healer]) -> None:
    healer = make_healer()
    seed(healer)
    assert healer.store is not None
    found = clusters(healer.store)
    assert len(found) == 1 and found[0].count == 4


def test_deterministic_proposal_matches_all_examples(make_healer: Callable[..., Healer],
                                                     tmp_path: Path) -> None:  # fmt: skip
    healer = make_healer()
    seed(healer)
    assert healer.store is not None
    proposals = propose(healer.store, healer.table.patterns)
    assert len(proposals) == 1 and proposals[0].accepted, proposals[0].problems
    path = learned_file(tmp_path)
    text, diff = render(path, proposals)
    assert diff.startswith("--- a/reflected.yaml") and "+  class: unknown" in diff
    path.parent.mkdir(parents=True)
    path.write_text(text)
    learned = [
        p
        for p in load_failure_patterns(DataRoots.of_checkout(tmp_path))
        if p.id.startswith("learned.")
    ]
    assert len(learned) == 1


def test_model_proposal_is_validated_against_other_classes(make_healer: Callable[..., Healer],
                                                           tmp_path: Path) -> None:  # fmt: skip
    healer = make_healer()
    seed(healer)
    assert healer.store is not None

    def model(answer: dict[str, str]) -> ScriptedModel:
        reply = {"text": json.dumps(answer)}
        conversation = {"match": {"user": ["frobnicator"]}, "replies": [reply]}
        script = parse_script({"conversations": [conversation]})
        return ScriptedModel("reflect", script)

    good = {
        "class": "out_of_memory",
        "regex": r"frobnicator quota exceeded",
        "hint": "Lower the shard size.",
    }
    proposals = propose(healer.store, healer.table.patterns, model=model(good))
    assert proposals[0].accepted and proposals[0].pattern["class"] == "out_of_memory"
    greedy = {"class": "out_of_memory", "regex": r"error|frobnicator", "hint": "x"}
    rejected = propose(healer.store, healer.table.patterns, model=model(greedy))[0]
    assert not rejected.accepted and any("type_error" in p for p in rejected.problems)
    nonsense = propose(healer.store, healer.table.patterns, model=model({"klass": "x"}))[0]  # type: ignore[dict-item]
    assert not nonsense.accepted
    # the learned pattern, once written, classifies the next occurrence
    text, _ = render(learned_file(tmp_path), proposals)
    learned_file(tmp_path).parent.mkdir(parents=True)
    learned_file(tmp_path).write_text(text)
    fresh = Healer(None, healer.config, load_failure_patterns(DataRoots.of_checkout(tmp_path)))
    result = fresh.classify(evidence(WIDGET[0].format(n=99), step="build"))
    assert result.failure_class == "out_of_memory" and result.pattern_id.startswith("learned.")
