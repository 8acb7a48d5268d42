"""The golden corpus: real tool output on broken fixtures, each log classified to its class.

The logs were produced by tests/golden/failures/generate.py running the real tools in
containers; this test only reads them.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from karma.heal import Evidence, PatternTable
from karma.recipes import FailureClass

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "failures"
CASES = sorted(GOLDEN.glob("*/*.json"))


def load(meta_path: Path) -> tuple[dict[str, object], Evidence]:
    meta = json.loads(meta_path.read_text())
    evidence = Evidence.from_log(
        meta_path.with_suffix(".log").read_bytes(), step=meta["step"], command=meta["command"],
        exit_code=meta["exit_code"], limit=meta["limit"], tool=meta["tool"],
    )  # fmt: skip
    return meta, evidence


def test_every_class_has_real_examples() -> None:
    counts = Counter(json.loads(p.read_text())["class"] for p in CASES)
    for klass in FailureClass.__args__:  # type: ignore[attr-defined]
        assert counts[klass] >= 2, f"{klass} has {counts[klass]} golden example(s)"


@pytest.mark.parametrize("meta_path", CASES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_golden_log_is_classified(table: PatternTable, meta_path: Path) -> None:
    meta, evidence = load(meta_path)
    result = table.classify(evidence)
    assert result.failure_class == meta["class"], result
    assert 0 < result.confidence <= 1
    assert len(result.signature) == 16
    if meta["class"] != "unknown":
        assert result.key_lines or evidence.limit or not evidence.output_tail.strip()
    if result.runner_up is not None:
        assert result.runner_up.failure_class != result.failure_class
