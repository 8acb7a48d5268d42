"""How long runs are kept: `karma runs prune` and the automatic prune at a build's start.

A pruned run loses its rows (the run, its tasks, attempts, model calls, steps, events and
gate results) and its report files in `.karma/reports/`. What KARMA learned from it —
the failures seen and the remediation outcomes — stays, as do the nightly's spec marks.
Git branches are the user's: `karma/<run>` and `karma-work/<run>/*` are listed, never
deleted. A run that is not finished (running, interrupted, stopped by the budget or
waiting for approval: it may still be resumed or decided) is kept unless asked for, and a
run whose process is still alive is never pruned.

The automatic prune (`store.retention_days`, at the start of `karma build`) removes at most
`AUTO_LIMIT` runs and does not VACUUM, so it costs a few indexed deletes; SQLite reuses the
freed pages. `karma runs prune` VACUUMs.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from karma.errors import UsageError
from karma.events import iso, utcnow
from karma.store import RunRow, Store
from karma.trailers import is_run_id

FINISHED = frozenset({"succeeded", "failed", "escalated"})
"""Statuses a run never leaves; every other one may still be resumed or decided."""
AUTO_LIMIT = 20
_AGE = re.compile(r"([0-9]{1,6})([dhw]?)")
_UNITS = {"": "days", "d": "days", "h": "hours", "w": "weeks"}


def parse_age(text: str) -> timedelta:
    """`30d`, `12h`, `2w` or a number of days."""
    match = _AGE.fullmatch(text.strip().lower())
    if match is None:
        raise UsageError(f"--older-than {text!r}: not an age", tip="e.g. 30d, 12h or 2w")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


@dataclass(frozen=True)
class PruneResult:
    runs: tuple[str, ...]
    """The runs removed (or, in a dry run, that would be)."""
    kept_unfinished: tuple[str, ...]
    """Old enough, but not finished (or still alive): kept."""
    reports: tuple[str, ...]
    branches: tuple[str, ...]
    """Branches of the pruned runs that still exist: the user's to delete."""
    rows: int
    bytes_before: int
    bytes_after: int
    dry_run: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "pruned": list(self.runs),
            "kept_unfinished": list(self.kept_unfinished),
            "reports_removed": list(self.reports),
            "branches": list(self.branches),
            "rows_removed": self.rows,
            "bytes_before": self.bytes_before,
            "bytes_after": self.bytes_after,
            "dry_run": self.dry_run,
        }


def _alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # someone else's process: alive
    return True


def select(
    store: Store,
    *,
    older_than: timedelta | None,
    keep: int | None,
    include_unfinished: bool = False,
    now: datetime | None = None,
    limit: int | None = None,
) -> tuple[list[RunRow], list[RunRow]]:
    """(runs to prune, runs kept because unfinished): older than `older_than` and not
    among the `keep` newest (either may be None; not both)."""
    if older_than is None and keep is None:
        raise UsageError("say which runs to prune", tip="--older-than 30d and/or --keep 50")
    cutoff = iso((now or utcnow()) - (older_than or timedelta(0)))
    candidates = store.runs_before(cutoff)
    if keep is not None:
        newest = {r.id for r in store.runs(keep)} if keep > 0 else set()
        candidates = [r for r in candidates if r.id not in newest]
    chosen: list[RunRow] = []
    kept: list[RunRow] = []
    for row in candidates:
        unfinished = row.status not in FINISHED
        live = row.status == "running" and _alive(row.pid)
        if live or (unfinished and not include_unfinished):
            kept.append(row)
        elif limit is None or len(chosen) < limit:
            chosen.append(row)
    return chosen, kept


def _report_files(run_id: str, reports_dir: Path) -> list[Path]:
    """The run's reports: regular files named after the run, directly in `reports_dir`
    (a path recorded in the store is not followed)."""
    if not is_run_id(run_id) or not reports_dir.is_dir() or reports_dir.is_symlink():
        return []
    found = []
    for path in reports_dir.iterdir():
        if path.stem == run_id and path.is_file() and not path.is_symlink():
            found.append(path)
    return sorted(found)


def prune(
    store: Store,
    *,
    reports_dir: Path,
    branches: Sequence[str] = (),
    older_than: timedelta | None = None,
    keep: int | None = None,
    include_unfinished: bool = False,
    dry_run: bool = False,
    vacuum: bool = True,
    limit: int | None = None,
    now: datetime | None = None,
) -> PruneResult:
    """Remove old runs' rows and report files; `branches`: the repository's KARMA branches,
    of which those of pruned runs are listed in the result."""
    chosen, kept = select(
        store,
        older_than=older_than,
        keep=keep,
        include_unfinished=include_unfinished,
        now=now,
        limit=limit,
    )
    ids = [r.id for r in chosen]
    reports = [p for run_id in ids for p in _report_files(run_id, reports_dir)]
    left = [
        b
        for b in branches
        if any(b == f"karma/{run_id}" or b.startswith(f"karma-work/{run_id}/") for run_id in ids)
    ]
    before = store.size_bytes()
    rows = 0
    if not dry_run and ids:
        rows = store.delete_runs(ids)
        for path in reports:
            path.unlink(missing_ok=True)
        if vacuum:
            store.vacuum()
    return PruneResult(
        tuple(ids),
        tuple(r.id for r in kept),
        tuple(str(p) for p in reports),
        tuple(left),
        rows,
        before,
        store.size_bytes(),
        dry_run,
    )


def prune_expired(store: Store, retention_days: int, reports_dir: Path) -> PruneResult | None:
    """The automatic prune at a build's start: finished runs older than `retention_days`
    (0: keep everything), at most `AUTO_LIMIT` of them, no VACUUM."""
    if retention_days <= 0:
        return None
    return prune(
        store,
        reports_dir=reports_dir,
        older_than=timedelta(days=retention_days),
        vacuum=False,
        limit=AUTO_LIMIT,
    )
