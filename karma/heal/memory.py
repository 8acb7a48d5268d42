"""The healing memory as a whole: statistics, one signature's story, export and import.

The memory is two store tables, `failures` (signatures seen) and
`remediation_outcomes`. An export is one JSON file a team can share or a CI cache can
carry; importing it merges (counts add up, outcomes already present are skipped).
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from karma.errors import UsageError
from karma.events import iso, utcnow
from karma.store import Store
from karma.text.inert import plain

FORMAT = "karma-memory/1"
SUCCESS = frozenset({"succeeded", "success", "passed", "ok", "done", "merged"})


def stats(store: Store, runs: int = 10) -> dict[str, Any]:
    """Per class: seen and resolved; per remediation: tries and success rate; the trend."""
    classes: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"seen": 0, "signatures": 0, "resolved": 0, "remediations": {}}
    )
    for row in store.failures():
        entry = classes[row["failure_class"]]
        entry["seen"] += int(row["count"])
        entry["signatures"] += 1
    for row in store.outcomes():
        entry = classes[row["failure_class"]]
        rem = entry["remediations"].setdefault(row["remediation"], {"tries": 0, "resolved": 0})
        rem["tries"] += 1
        if row["outcome"] == "resolved":
            rem["resolved"] += 1
            entry["resolved"] += 1
    for entry in classes.values():
        for rem in entry["remediations"].values():
            rem["success_rate"] = round(rem["resolved"] / rem["tries"], 3)
    return {"classes": dict(sorted(classes.items())), "first_attempt_trend": trend(store, runs)}


def trend(store: Store, runs: int) -> list[dict[str, Any]]:
    """First-attempt success rate of each of the last `runs` runs, oldest first."""
    rows = store.first_attempt_trend(runs, SUCCESS)
    return [
        {"run": r["id"], "created_at": r["created_at"], "tasks": r["n"],
         "first_attempt_success": round(r["first_ok"] / r["n"], 3) if r["n"] else None}
        for r in reversed(rows)
    ]  # fmt: skip


def show(store: Store, signature: str) -> dict[str, Any] | None:
    rows = store.failures_starting(signature)
    if not rows:
        return None
    failure = rows[0]
    outcomes = store.outcomes_for(failure["signature"])
    return {**failure, "files": json.loads(failure.pop("files_json") or "[]"),
            "outcomes": outcomes}  # fmt: skip


class _Failure(BaseModel):
    model_config = ConfigDict(extra="forbid")
    signature: str
    failure_class: str
    pattern_id: str | None = None
    first_seen: str
    last_seen: str
    count: int
    example: str
    files_json: str = "[]"
    kind: str | None = None
    hint: str | None = None


class _Outcome(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ts: str
    run_id: str | None = None
    task_id: str | None = None
    pattern_id: str
    failure_class: str
    signature: str | None = None
    remediation: str
    outcome: str
    seconds: float = 0.0
    side_effects: str | None = None


class MemoryFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    format: str
    exported_at: str
    failures: list[_Failure]
    outcomes: list[_Outcome]


def export(store: Store) -> dict[str, Any]:
    outcomes = [{k: v for k, v in row.items() if k != "id"} for row in store.outcomes()]
    return {"format": FORMAT, "exported_at": iso(utcnow()), "failures": store.failures(),
            "outcomes": outcomes}  # fmt: skip


def import_file(store: Store, path: Path) -> dict[str, int]:
    """Merge an exported memory into `store`; returns how many rows were added."""
    try:
        data = MemoryFile.model_validate_json(path.read_bytes())
    except (OSError, ValidationError) as exc:
        raise UsageError(f"{path}: not a KARMA memory export: {str(exc).splitlines()[0]}") from None
    if data.format != FORMAT:
        raise UsageError(f"{path}: format {data.format!r}, expected {FORMAT!r}")
    return store.merge_memory([f.model_dump() for f in data.failures],
                              [o.model_dump() for o in data.outcomes])  # fmt: skip


# -- what a night learned (the nightly digest) ----------------------------------------------


def _rate(hits: int, total: int) -> float | None:
    return None if total == 0 else round(hits / total, 3)


def memory_trend(store: Store, since: str) -> dict[str, Any]:
    """First-attempt success and remediation success, tonight against before."""

    def first_attempts(before: bool) -> dict[str, Any]:
        statuses = store.first_attempts(since, before=before)
        ok = sum(status == "succeeded" for status in statuses)
        return {"tasks": len(statuses), "rate": _rate(ok, len(statuses))}

    def remediations(before: bool) -> dict[str, Any]:
        outcomes = store.outcomes_since(since, before=before)
        ok = sum(o in {"succeeded", "success", "fixed", "resolved"} for o in outcomes)
        return {"count": len(outcomes), "rate": _rate(ok, len(outcomes))}

    return {
        "first_attempt_success": {"tonight": first_attempts(False), "before": first_attempts(True)},
        "remediation_success": {"tonight": remediations(False), "before": remediations(True)},
    }


def patterns_learned(store: Store, since: str) -> list[dict[str, Any]]:
    rows = store.failures_since(since)
    return [
        {
            "signature": r["signature"][:16],
            "failure_class": r["failure_class"],
            "pattern_id": r["pattern_id"],
            "count": r["count"],
            "example": plain(r["example"], 200),
        }
        for r in rows
    ]
