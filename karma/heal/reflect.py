"""Reflection: new failure patterns proposed from unknown failures that keep recurring.

Unknown signatures are clustered by the words of their normalised key lines. For each
cluster that recurs, a pattern is proposed (by the model when one is given: class,
regex, hint; otherwise a regex from the lines the examples share, class `unknown`).
A proposal is accepted only if its regex matches every example of the cluster and no
example of another class. Accepted ones become a YAML file under
`<repo>/.karma/recipes/learned/`, shown as a diff; only `--apply` writes it.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from karma.heal.signature import normalise
from karma.models.interface import ModelClient, ModelRequest, ProviderError, UserMessage
from karma.recipes import FailureClass, FailurePattern
from karma.store import Store

SIMILAR = 0.5
_WORDS = re.compile(r"[A-Za-z_]{3,}")
SYSTEM = (
    "You write failure patterns for a build tool. Given example log lines of one recurring "
    'failure, reply with JSON only: {"class": one of CLASSES, "regex": a Python regex '
    'matching a line of every example and as specific as possible, "hint": one sentence '
    'telling a coding agent how to fix it, "description": a short name}.'
)


@dataclass
class Cluster:
    signatures: list[str]
    examples: list[str]
    count: int
    words: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class Proposal:
    pattern: dict[str, Any]
    cluster: Cluster
    problems: tuple[str, ...]
    """Why it is rejected; empty when accepted."""

    @property
    def accepted(self) -> bool:
        return not self.problems


class _ModelPattern(BaseModel):
    model_config = ConfigDict(extra="forbid")
    klass: FailureClass
    regex: str
    hint: str
    description: str = ""


def clusters(store: Store, *, min_count: int = 2) -> list[Cluster]:
    """Unknown failures grouped by similar wording; only groups seen `min_count` times."""
    found: list[Cluster] = []
    for row in store.failures():
        # No pattern knew it: unknown, or only the learned model's guess (`model:<class>`).
        if row["failure_class"] != "unknown" and not str(row["pattern_id"] or "").startswith(
            "model:"
        ):
            continue
        words = set(_WORDS.findall(normalise(row["example"]).lower()))
        for cluster in found:
            union = cluster.words | words
            if union and len(cluster.words & words) / len(union) >= SIMILAR:
                cluster.signatures.append(row["signature"])
                cluster.examples.append(row["example"])
                cluster.count += int(row["count"])
                break
        else:
            found.append(Cluster([row["signature"]], [row["example"]], int(row["count"]), words))
    return [c for c in found if c.count >= min_count]


def _common_regex(examples: list[str]) -> str | None:
    """An escaped regex of a normalised line every example has, numbers generalised."""
    line_sets = [{normalise(line) for line in ex.splitlines() if line.strip()} for ex in examples]
    common = set.intersection(*line_sets) if line_sets else set()
    if not common:
        return None
    line = max(sorted(common), key=len)
    regex = re.escape(line)
    for placeholder in ("<path>", "<n>", "<hex>", "<time>", "<tmp>", "<id>"):
        regex = regex.replace(re.escape(placeholder), r"\S+")
    return regex


def _from_model(model: ModelClient, cluster: Cluster) -> _ModelPattern | str:
    prompt = "Examples (one per block):\n\n" + "\n\n".join(cluster.examples[:8])
    system = SYSTEM.replace("CLASSES", ", ".join(FailureClass.__args__))  # type: ignore[attr-defined]
    request = ModelRequest(system, (UserMessage(prompt),), max_tokens=600, purpose="reflect")
    try:
        text = model.complete(request).text.strip()
    except ProviderError as exc:
        return f"model failed: {exc}"
    text = re.sub(r"^```(?:json)?|```$", "", text, flags=re.MULTILINE).strip()
    try:
        data = json.loads(text)
        if isinstance(data, dict) and "class" in data:
            data["klass"] = data.pop("class")
        return _ModelPattern.model_validate(data)
    except (json.JSONDecodeError, ValidationError) as exc:
        return f"model reply is not a pattern: {str(exc).splitlines()[0]}"


def propose(
    store: Store,
    known: list[FailurePattern],
    *,
    model: ModelClient | None = None,
    negatives: Sequence[tuple[str, str]] = (),
) -> list[Proposal]:
    """A pattern for each recurring unknown cluster, checked against every other example.

    `negatives` are (class, text) examples of known classes beyond the store's own.
    """
    others = [(str(r["failure_class"]), str(r["example"])) for r in store.failures()]
    proposals: list[Proposal] = []
    taken = {p.id for p in known}
    for index, cluster in enumerate(clusters(store)):
        problems: list[str] = []
        klass: str = "unknown"
        hint = "A failure seen before with no known fix; read the lines quoted and fix the cause."
        description = "Learned from recurring unknown failures"
        regex = _common_regex(cluster.examples)
        if model is not None:
            answer = _from_model(model, cluster)
            if isinstance(answer, str):
                problems.append(answer)
            else:
                klass, regex, hint = answer.klass, answer.regex, answer.hint
                description = answer.description or description
        if regex is None:
            problems.append("the examples share no line to match")
            regex = ""
        pattern_id = f"learned.{klass}.{cluster.signatures[0][:8]}"
        while pattern_id in taken:
            pattern_id += f"-{index}"
        taken.add(pattern_id)
        problems += _check(regex, klass, cluster, [*others, *negatives])
        pattern = {
            "id": pattern_id, "class": klass, "description": description, "confidence": 0.75,
            "match": {"output": [regex]}, "hint": hint,
            "remediations": [{"name": "retry_with_hint", "prior": 0.4},
                             {"name": "fresh_sandbox", "prior": 0.3},
                             {"name": "escalate_model", "prior": 0.3}],
        }  # fmt: skip
        proposals.append(Proposal(pattern, cluster, tuple(problems)))
    return proposals


def _check(regex: str, klass: str, cluster: Cluster, others: list[tuple[str, str]]) -> list[str]:
    if not regex:
        return []
    try:
        compiled = re.compile(regex, re.MULTILINE)
    except re.error as exc:
        return [f"regex does not compile: {exc}"]
    problems = [
        f"misses example of {sig}"
        for sig, ex in zip(cluster.signatures, cluster.examples, strict=True)
        if not compiled.search(ex)
    ]
    own = set(cluster.examples)
    for other_class, text in others:
        if other_class != klass and text not in own and compiled.search(text):
            problems.append(f"also matches an example of {other_class}")
            break
    return problems


def learned_file(repo: Path) -> Path:
    return repo / ".karma" / "recipes" / "learned" / "reflected.yaml"


def render(path: Path, accepted: list[Proposal]) -> tuple[str, str]:
    """The new file's text and a unified diff from the current one."""
    old = path.read_text(encoding="utf-8") if path.is_file() else ""
    current = (yaml.safe_load(old) or {}).get("patterns", []) if old else []
    ids = {p["id"] for p in current}
    patterns = current + [p.pattern for p in accepted if p.pattern["id"] not in ids]
    header = "# Patterns learned by `karma memory reflect`; review them like code.\n"
    new = header + yaml.safe_dump({"patterns": patterns}, sort_keys=False, allow_unicode=True)
    diff = "".join(difflib.unified_diff(
        old.splitlines(keepends=True), new.splitlines(keepends=True),
        fromfile=f"a/{path.name}", tofile=f"b/{path.name}",
    ))  # fmt: skip
    return new, diff
