"""The learned layer behind the patterns: a linear model over hashed n-grams and evidence.

Patterns decide when they are sure (they name the line that matched); when none matches,
or the best is unsure, this model scores every class from the key lines of the log and
from the evidence that is not text (exit code, signal, the sandbox's limit, the step, the
tool, the words of the command that failed), all as features of one linear model with
learned weights. Its probabilities are softmax outputs with a fitted temperature; below
`threshold` the answer is `unknown`.

The model is data: `recipes/models/failure_classifier.json` (built-in only: a target
repository cannot ship weights that steer its own healing), written by
`bench/retrain_classifier.py` from the train split of the public corpus and the golden
corpus. Scoring is plain Python over a dict of weights: no numpy, no scikit-learn at run
time, bounded work (at most `MAX_FEATURES` features of at most `MODEL_LINES` lines).
"""

from __future__ import annotations

import json
import math
import re
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from itertools import pairwise
from operator import add
from pathlib import Path
from typing import TYPE_CHECKING, Any

from karma.heal.evidence import Evidence
from karma.heal.signature import key_lines, normalise

if TYPE_CHECKING:
    from karma.heal.patterns import Classification

MODEL_FILE = "models/failure_classifier.json"
BUCKETS = 1 << 18
MAX_FEATURES = 600
_WORD = re.compile(r"[a-z][a-z0-9_]+|<\w+>|[!=*#:]{2,}|\be\d{3,4}\b")


def _bucket(feature: str) -> int:
    # crc32 is stable across processes (str hash is salted) and runs in C.
    return zlib.crc32(feature.encode()) % BUCKETS


def evidence_features(evidence: Evidence) -> list[str]:
    """What the evidence says apart from the text, as feature names.

    An exit code above 128 is a signal (137 = 128 + SIGKILL); 124 is coreutils'
    timeout; 126/127 are the shell's "cannot execute"/"not found".
    """
    code = evidence.exit_code
    names = [f"exit:{code}" if code in (0, 1, 2, 124, 125, 126, 127, 130, 137, 139, 143)
             else "exit:other"]  # fmt: skip
    if code > 128:
        names.append(f"signal:{code - 128}")
    names.append(f"limit:{evidence.limit or 'none'}")
    if evidence.limit and code == 137:
        names.append(f"limit:{evidence.limit}+sigkill")
    names.append(f"step:{evidence.step}")
    names.append(f"tool:{evidence.tool or 'none'}")
    return names


# A CI runner names the command that failed: Travis ends each failed step with this line.
# Unanchored, so the regex engine skips ahead to its literal (4x faster than `^` with
# re.M on 20 KB); a match counts only at the start of a line.
_FAILED_COMMAND = re.compile(r'The command "(.{1,300}?)" (?:exited|failed) with [1-9]')
_COMMAND_WORD = re.compile(r"[a-z][a-z0-9_-]+")


def command_features(evidence: Evidence) -> list[str]:
    """The words of the command that failed: `npm run lint`, `rubocop`, `mix test`.

    The evidence's own command when the caller knows it; else the last failed commands
    a CI runner's log names. The step a log alone cannot tell, the command often does.
    """
    text = evidence.output_tail
    commands = [m.group(1) for m in _FAILED_COMMAND.finditer(text)
                if m.start() == 0 or text[m.start() - 1] == "\n"][-2:]  # fmt: skip
    if evidence.command:
        commands.append(evidence.command)
    return [f"cmd:{w}" for cmd in commands[-2:] for w in _COMMAND_WORD.findall(cmd.lower())[:8]]


def text_features(lines: Iterable[str]) -> list[str]:
    """Word unigrams and bigrams of the normalised key lines, and character trigrams of words."""
    features: list[str] = []
    grams: set[str] = set()
    for line in lines:
        words = _WORD.findall(normalise(line).lower())
        features.extend(f"w:{w}" for w in words)
        features.extend(f"b:{a} {b}" for a, b in pairwise(words))
        for word in words:
            if len(word) >= 5 and word not in grams:
                grams.add(word)
                padded = f"^{word}$"
                features.extend(f"c:{padded[i : i + 3]}" for i in range(len(padded) - 2))
        if len(features) >= MAX_FEATURES:
            break
    return features[:MAX_FEATURES]


def pattern_features(pattern: Classification | None) -> list[str]:
    """What the patterns said, so the model learns how far to trust each of them."""
    if pattern is None:
        return []
    band = "sure" if pattern.confidence >= 0.8 else "weak"
    names = [f"pat:{pattern.failure_class}", f"pat:{pattern.failure_class}:{band}"]
    if pattern.runner_up is not None:
        names.append(f"pat2:{pattern.runner_up.failure_class}")
    # Every class and the first patterns that matched: which ones hit together tells
    # the model more than the winner alone (lint and test patterns both hit: lint).
    names.extend(f"hitc:{klass}" for klass in dict.fromkeys(k for k, _ in pattern.matched))
    names.extend(f"hit:{pattern_id}" for _, pattern_id in pattern.matched[:6])
    return names


MODEL_TAIL = 8_000
MODEL_LINES = 40


def model_lines(evidence: Evidence) -> list[str]:
    """The lines the model reads: the error-looking lines at the end of the output.

    More of them than a signature hashes: in a real CI log the tool's error is often
    followed by the runner's own trailer (exit codes, cache uploads, cleanup).
    """
    return key_lines(evidence.output_tail, tail=MODEL_TAIL, limit=MODEL_LINES)


def features(
    evidence: Evidence, lines: Sequence[str], pattern: Classification | None = None
) -> list[int]:
    names = (
        *evidence_features(evidence), *command_features(evidence), *pattern_features(pattern),
        *text_features(lines),
    )  # fmt: skip
    return [_bucket(f) for f in names]


@dataclass(frozen=True)
class Prediction:
    failure_class: str
    probability: float
    runner_up: str | None
    runner_up_probability: float


class ClassModel:
    """A multinomial logistic model: weights per hashed feature, one per class."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.classes: list[str] = list(data["classes"])
        self.bias: list[float] = [float(b) for b in data["bias"]]
        self.weights: dict[int, list[float]] = {int(k): v for k, v in data["weights"].items()}
        self.temperature = float(data.get("temperature", 1.0))
        self.threshold = float(data.get("threshold", 0.5))
        self.meta: dict[str, Any] = dict(data.get("meta", {}))

    @classmethod
    def load(cls, path: Path) -> ClassModel:
        return cls(json.loads(path.read_text()))

    def scores(self, buckets: Iterable[int]) -> list[float]:
        total = list(self.bias)
        get = self.weights.get
        for bucket in set(buckets):
            row = get(bucket)
            if row is not None:
                total = list(map(add, total, row))  # one C-level pass per feature
        return total

    def probabilities(self, buckets: Iterable[int]) -> list[float]:
        raw = [s / self.temperature for s in self.scores(buckets)]
        top = max(raw)
        exps = [math.exp(s - top) for s in raw]
        norm = sum(exps)
        return [e / norm for e in exps]

    def predict(
        self, evidence: Evidence, lines: Sequence[str], pattern: Classification | None = None
    ) -> Prediction:
        probs = self.probabilities(features(evidence, lines, pattern))
        order = sorted(range(len(probs)), key=probs.__getitem__, reverse=True)
        first, second = order[0], order[1] if len(order) > 1 else None
        return Prediction(
            self.classes[first], probs[first],
            None if second is None else self.classes[second],
            0.0 if second is None else probs[second],
        )  # fmt: skip


@cache
def builtin_model() -> ClassModel | None:
    """The model shipped with KARMA; None when the data file is absent (patterns only)."""
    from karma.home import builtin_dir

    path = builtin_dir("recipes") / MODEL_FILE
    return ClassModel.load(path) if path.is_file() else None
