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

First the precedence table (`recipes/models/failure_precedence.json`, see
`karma.heal.precedence`) is learned from the same out-of-fold predictions: for each
ordered pair (cause, symptom) of classes whose patterns matched together in a train log,
with the symptom's pattern winning, and each condition (`both`, `before`), the rule is
replayed on those logs (the pattern layer with the rule, the fold's model where the
patterns are then unsure); a rule is kept only if it makes no train log wrong and some
right, and rules are added one at a time while accuracy and macro-F1 do not fall. The
model is then trained on the pattern layer with the table.
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
from karma.heal.precedence import PRECEDENCE_FILE, Precedence, PrecedenceRule  # noqa: E402
from karma.recipes import FailurePattern, load_failure_patterns  # noqa: E402

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


def decide(
    model: ClassModel,
    pattern: Classification,
    x: list[int],
    threshold: float,
    precedence: Precedence | None = None,
) -> str:
    """The layered decision of karma.heal.patterns, replayed on precomputed features."""
    if pattern.failure_class != "unknown" and pattern.confidence >= PATTERN_SURE:
        return pattern.failure_class
    probs = model.probabilities(x)
    best = max(range(len(probs)), key=probs.__getitem__)
    if probs[best] < threshold:
        return "unknown"
    decided = model.classes[best]
    rule = precedence and precedence.overrule_decision(decided, (k for k, _ in pattern.matched))
    return rule.cause if rule else decided


def out_of_fold(rows: list[tuple[list[int], str, str]]) -> list[tuple[dict[str, Any], int]]:
    """(the model fitted without its fold, row index) for every row: 4 folds by repository."""
    folds = 4
    fold_of = {g: int(hashlib.sha256(g.encode()).hexdigest(), 16) % folds for _, _, g in rows}
    oof: list[tuple[dict[str, Any], int]] = []
    for fold in range(folds):
        data = fit([r for r in rows if fold_of[r[2]] != fold])
        oof += [(data, i) for i, r in enumerate(rows) if fold_of[r[2]] == fold]
    return oof


def macro_f1(pairs: list[tuple[str, str]]) -> float:
    """Mean F1 over the classes of the labels, from (label, predicted) pairs."""
    f1s = []
    for c in {label for label, _ in pairs}:
        tp = sum(label == guess == c for label, guess in pairs)
        predicted = sum(guess == c for _, guess in pairs)
        actual = sum(label == c for label, _ in pairs)
        f1s.append(2 * tp / (predicted + actual))
    return sum(f1s) / len(f1s)


def calibrate(
    rows: list[tuple[list[int], str, str]],
    patterns: list[Classification],
    oof: list[tuple[dict[str, Any], int]],
    precedence: Precedence | None = None,
) -> tuple[float, float, float, float]:
    """Temperature (min log-loss), unknown threshold (max accuracy), OOF accuracy, macro-F1."""

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
            right += decide(model, patterns[i], rows[i][0], threshold, precedence) == rows[i][1]
        return right / len(oof)

    threshold = max((0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7), key=accuracy)
    pairs = []
    for data, i in oof:
        model = ClassModel({**data, "temperature": temperature})
        pairs.append((rows[i][1], decide(model, patterns[i], rows[i][0], threshold, precedence)))
    return temperature, threshold, accuracy(threshold), macro_f1(pairs)


Replay = tuple[list[str], list[str], list[str]]


def learn_precedence(
    data: list[tuple[Evidence, str, str]],
    table_patterns: list[FailurePattern],
    patterns: list[Classification],
    oof: list[tuple[dict[str, Any], int]],
    temperature: float,
    threshold: float,
) -> tuple[Precedence, list[str]]:
    """The precedence rules that out of fold make no train log wrong and some right."""
    models = {i: ClassModel({**d, "temperature": temperature}) for d, i in oof}
    labels = [label for _, label, _ in data]
    groups = [group for _, _, group in data]

    def replay(precedence: Precedence, indices: list[int]) -> dict[int, tuple[str, bool]]:
        table = PatternTable(table_patterns, model=None, precedence=precedence)
        out = {}
        for i in indices:
            evidence = data[i][0]
            pattern = table.classify_patterns(evidence)
            x = model_features(evidence, model_lines(evidence), pattern)
            guess = decide(models[i], pattern, x, threshold, precedence)
            fired = bool(pattern.precedence) or guess != decide(models[i], pattern, x, threshold)
            out[i] = (guess, fired)
        return out

    base = replay(Precedence(()), list(range(len(data))))
    # A pair is a candidate where the cause's pattern matched and the symptom won: by
    # score among the patterns, or as the model's decision.
    candidates: dict[tuple[str, str], list[int]] = {}
    for i, pattern in enumerate(patterns):
        matched = list(dict.fromkeys(k for k, _ in pattern.matched))
        for symptom in {*matched, base[i][0]} - {"unknown"}:
            for cause in matched:
                if cause != symptom:
                    candidates.setdefault((cause, symptom), []).append(i)
    kept: list[PrecedenceRule] = []
    log: list[str] = []
    for (cause, symptom), indices in sorted(candidates.items()):
        options = []
        for when in ("before", "both"):
            rule = PrecedenceRule(cause=cause, symptom=symptom, when=when)  # type: ignore[arg-type]
            new = replay(Precedence([rule]), indices)
            fired = [i for i in indices if new[i][1]]
            fixed = [i for i in fired if new[i][0] == labels[i] != base[i][0]]
            broken = [i for i in fired if base[i][0] == labels[i] != new[i][0]]
            log.append(f"{cause} over {symptom} ({when}): applied {len(fired)}, "
                       f"right +{len(fixed)} ({len({groups[i] for i in fixed})} repositories), "
                       f"wrong +{len(broken)}")  # fmt: skip
            if fixed and not broken:
                counted = rule.model_copy(update={
                    "fired": len(fired), "fixed": len(fixed), "broken": 0,
                    "repos": len({groups[i] for i in fixed})})  # fmt: skip
                options.append(counted)
        # Of two conditions that do as well, the narrower one (`before` applies less).
        if options:
            kept.append(max(options, key=lambda r: (r.fixed, -r.fired)))
    chosen: list[PrecedenceRule] = []
    everyone = list(range(len(data)))
    current = [labels[i] == base[i][0] for i in everyone], macro_f1(
        [(labels[i], base[i][0]) for i in everyone])  # fmt: skip
    for rule in sorted(kept, key=lambda r: (-r.fixed, r.cause, r.symptom)):
        try:
            trial = Precedence([*chosen, rule])
        except ValueError:  # it would close a cycle with a rule already kept
            log.append(f"dropped (a cycle with a kept rule): {rule.cause} over {rule.symptom}")
            continue
        new = replay(trial, everyone)
        right = [labels[i] == new[i][0] for i in everyone]
        f1 = macro_f1([(labels[i], new[i][0]) for i in everyone])
        if sum(right) >= sum(current[0]) and f1 >= current[1] - 1e-9:
            chosen.append(rule)
            current = right, f1
            log.append(f"kept {rule.describe()}")
        else:
            log.append(f"dropped with the others: {rule.cause} over {rule.symptom}")
    return Precedence(chosen), log


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default = ROOT / "recipes" / "models" / "failure_classifier.json"
    parser.add_argument("--out", type=Path, default=default)
    args = parser.parse_args()
    start = time.perf_counter()
    table_patterns = load_failure_patterns()
    data = load_public("train") + load_golden()
    table = PatternTable(table_patterns, model=None, precedence=None)
    rows, patterns = vectorise(data, table)
    oof = out_of_fold(rows)
    temperature, threshold, before_accuracy, before_f1 = calibrate(rows, patterns, oof)
    print(f"score order only: out of fold {before_accuracy:.1%}, macro-F1 {before_f1:.3f}")
    precedence, log = learn_precedence(data, table_patterns, patterns, oof, temperature, threshold)
    print("\n".join(f"  {line}" for line in log))
    table = PatternTable(table_patterns, model=None, precedence=precedence)
    rows, patterns = vectorise(data, table)
    temperature, threshold, oof_accuracy, oof_f1 = calibrate(
        rows, patterns, out_of_fold(rows), precedence
    )
    print(f"with {len(precedence.rules)} precedence rules: out of fold {oof_accuracy:.1%}, "
          f"macro-F1 {oof_f1:.3f}")  # fmt: skip
    model = fit(rows)
    # Drop weights too small to change a decision: a smaller file loads faster.
    weights = {
        str(f): [round(w, 3) for w in row]
        for f, row in model["weights"].items()
        if max(abs(w) for w in row) >= 0.01
    }
    exported = {
        "classes": model["classes"], "bias": [round(b, 4) for b in model["bias"]],
        "weights": weights, "temperature": temperature, "threshold": threshold,
        "meta": {"trained_on": len(rows), "oof_accuracy": round(oof_accuracy, 4),
                 "oof_macro_f1": round(oof_f1, 4), "C": C,
                 "group_power": GROUP_POWER, "min_groups": MIN_GROUPS,
                 "script": "bench/retrain_classifier.py"},
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(exported, separators=(",", ":")))
    meta = {"oof_accuracy_without": round(before_accuracy, 4), "oof_macro_f1_without":
            round(before_f1, 4), "oof_accuracy": round(oof_accuracy, 4),
            "oof_macro_f1": round(oof_f1, 4), "script": "bench/retrain_classifier.py"}  # fmt: skip
    table_path = args.out.parent / Path(PRECEDENCE_FILE).name
    table_path.write_text(json.dumps(precedence.to_json(meta), indent=1) + "\n")
    print(f"{len(rows)} examples, {len(weights)} features, T={temperature}, "
          f"threshold={threshold}, out-of-fold accuracy {oof_accuracy:.1%}, "
          f"{time.perf_counter() - start:.0f}s -> {args.out}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
