"""Retrain the failure classifier's learned layer from the corpus (train split only).

    .venv/bin/python bench/retrain_classifier.py [--out recipes/models/failure_classifier.json]

Reads `tests/golden/failures/public/train.jsonl` (real CI logs) and the golden corpus
(`tests/golden/failures/<class>/*.log`: real tool output with exit code, limit, step and
tool) and fits an L2 multinomial logistic regression (scikit-learn: needed here only,
`pip install scikit-learn`; KARMA scores the exported weights in plain Python) over the
features of `karma.heal.model`: hashed word/char n-grams of the key lines, the evidence
(exit code, signal, limit, step, tool, the failed command's words) and what the
patterns said; each log weighs 1/sqrt(the logs of its repository), and a feature
counts only if logs of two repositories or more have it. The softmax
temperature and the `unknown` threshold are chosen on out-of-fold predictions of the
train split (folds by source repository); the test split is never read here.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from karma.heal.evidence import Evidence  # noqa: E402
from karma.heal.model import BUCKETS, ClassModel, model_lines  # noqa: E402
from karma.heal.model import features as model_features  # noqa: E402
from karma.heal.patterns import PATTERN_SURE, Classification, PatternTable  # noqa: E402
from karma.recipes import load_failure_patterns  # noqa: E402

GOLDEN = ROOT / "tests" / "golden" / "failures"
C = 1.0
# Chosen, with C, on out-of-fold predictions of train (folds by repository).
GROUP_POWER = 0.5
MIN_GROUPS = 2


def load_public(split: str) -> list[tuple[Evidence, str, str]]:
    rows = [json.loads(line) for line in (GOLDEN / "public" / f"{split}.jsonl").open()]
    return [(Evidence.from_log(r["log"], tool=r["tool"]), r["label"], r["group"]) for r in rows]


def load_golden() -> list[tuple[Evidence, str, str]]:
    out = []
    for meta_path in sorted(GOLDEN.glob("*/*.json")):
        meta = json.loads(meta_path.read_text())
        evidence = Evidence.from_log(
            meta_path.with_suffix(".log").read_bytes(), step=meta["step"],
            command=meta["command"], exit_code=meta["exit_code"], limit=meta["limit"],
            tool=meta["tool"],
        )  # fmt: skip
        out.append((evidence, meta["class"], f"golden:{meta_path.stem}"))
    return out


def vectorise(
    data: list[tuple[Evidence, str, str]], table: PatternTable
) -> tuple[list[tuple[list[int], str, str]], list[Classification]]:
    rows, patterns = [], []
    for evidence, label, group in data:
        pattern = table.classify_patterns(evidence)
        x = model_features(evidence, model_lines(evidence), pattern)
        rows.append((sorted(set(x)), label, group))
        patterns.append(pattern)
    return rows, patterns


def matrix(rows: list[tuple[list[int], str, str]]) -> Any:
    import numpy as np
    import scipy.sparse as sp

    r = [i for i, (x, _, _) in enumerate(rows) for _ in x]
    c = [f for x, _, _ in rows for f in x]
    return sp.csr_matrix((np.ones(len(r)), (r, c)), shape=(len(rows), BUCKETS))


def fit(rows: list[tuple[list[int], str, str]]) -> dict[str, Any]:
    """L2 logistic regression (scikit-learn), exported as {bucket: per-class weights}."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=C, max_iter=400, tol=1e-3, class_weight="balanced")
    # A feature that one repository alone prints (its paths, its names) says which
    # repository a log is from, not which failure: only those of MIN_GROUPS or more count.
    groups: dict[int, set[str]] = {}
    for x, _, g in rows:
        for f in x:
            groups.setdefault(f, set()).add(g)
    rows = [([f for f in x if len(groups[f]) >= MIN_GROUPS], y, g) for x, y, g in rows]
    # A repository's logs look alike (LogChunks holds up to 10 of each): weighted by
    # 1/sqrt(its count), one repository's wording does not outvote the others'.
    per_group = Counter(g for _, _, g in rows)
    weights = [per_group[g] ** -GROUP_POWER for _, _, g in rows]
    mean = sum(weights) / len(weights)
    model.fit(matrix(rows), [y for _, y, _ in rows], sample_weight=[w / mean for w in weights])
    used = sorted({f for x, _, _ in rows for f in x})
    coef = model.coef_
    weights = {f: [float(w) for w in coef[:, f]] for f in used}
    classes = [str(c) for c in model.classes_]
    return {"classes": classes, "bias": [float(b) for b in model.intercept_], "weights": weights}


def decide(model: ClassModel, pattern: Classification, x: list[int], threshold: float) -> str:
    """The layered decision of karma.heal.patterns, replayed on precomputed features."""
    if pattern.failure_class != "unknown" and pattern.confidence >= PATTERN_SURE:
        return pattern.failure_class
    probs = model.probabilities(x)
    best = max(range(len(probs)), key=probs.__getitem__)
    return model.classes[best] if probs[best] >= threshold else "unknown"


def calibrate(
    rows: list[tuple[list[int], str, str]], patterns: list[Classification]
) -> tuple[float, float, float]:
    """Temperature (min log-loss) and unknown threshold (max accuracy), out of fold by repo."""
    folds = 4
    fold_of = {g: int(hashlib.sha256(g.encode()).hexdigest(), 16) % folds for _, _, g in rows}
    oof: list[tuple[dict[str, Any], int]] = []
    for fold in range(folds):
        data = fit([r for r in rows if fold_of[r[2]] != fold])
        oof += [(data, i) for i, r in enumerate(rows) if fold_of[r[2]] == fold]

    def loss(t: float) -> float:
        total = 0.0
        for data, i in oof:
            model = ClassModel({**data, "temperature": t})
            probs = model.probabilities(rows[i][0])
            y = rows[i][1]
            total -= math.log(max(probs[model.classes.index(y)] if y in model.classes else 0, 1e-9))
        return total

    temperature = min((0.5, 0.75, 1.0, 1.5, 2.0, 3.0), key=loss)

    def accuracy(threshold: float) -> float:
        right = 0
        for data, i in oof:
            model = ClassModel({**data, "temperature": temperature})
            right += decide(model, patterns[i], rows[i][0], threshold) == rows[i][1]
        return right / len(oof)

    threshold = max((0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7), key=accuracy)
    return temperature, threshold, accuracy(threshold)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default = ROOT / "recipes" / "models" / "failure_classifier.json"
    parser.add_argument("--out", type=Path, default=default)
    args = parser.parse_args()
    start = time.perf_counter()
    table = PatternTable(load_failure_patterns(), model=None)
    rows, patterns = vectorise(load_public("train") + load_golden(), table)
    temperature, threshold, oof_accuracy = calibrate(rows, patterns)
    model = fit(rows)
    # Drop weights too small to change a decision: a smaller file loads faster.
    weights = {
        str(f): [round(w, 3) for w in row]
        for f, row in model["weights"].items()
        if max(abs(w) for w in row) >= 0.01
    }
    data = {
        "classes": model["classes"], "bias": [round(b, 4) for b in model["bias"]],
        "weights": weights, "temperature": temperature, "threshold": threshold,
        "meta": {"trained_on": len(rows), "oof_accuracy": round(oof_accuracy, 4), "C": C,
                 "group_power": GROUP_POWER, "min_groups": MIN_GROUPS,
                 "script": "bench/retrain_classifier.py"},
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, separators=(",", ":")))
    print(f"{len(rows)} examples, {len(weights)} features, T={temperature}, "
          f"threshold={threshold}, out-of-fold accuracy {oof_accuracy:.1%}, "
          f"{time.perf_counter() - start:.0f}s -> {args.out}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
