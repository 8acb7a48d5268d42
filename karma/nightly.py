"""`karma nightly`: build a queue of specs unattended, under a budget and a deadline.

A spec is a Markdown file with front matter (title, priority, max-cost, base). Specs are
taken by priority (1 first), each built with the budget that is left, until the queue,
the night's budget or the deadline runs out. Each outcome is kept in the store's `specs`
table under the hash of the spec's content, so a re-run goes on where the last one
stopped and never builds a spec twice unless asked. A bad spec, an empty queue or a spec
asking more than is left is an entry in the digest, never the end of the night.
The digest (`karma.digest`: Markdown, JSON, HTML) says what was built, escalated, skipped
and why, the cost against the budget, how the healing memory is trending, and what waits
for a human (this repository's runs, tonight's or older, and since when). A spec whose
build waits for a human does not hold the night: the next one is built.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from karma.config import KarmaConfig
from karma.errors import BudgetExceeded, KarmaError, UsageError, WorkspaceError
from karma.events import Subscriber, iso
from karma.heal.memory import memory_trend, patterns_learned
from karma.hostgit import open_repo
from karma.ids import RunId
from karma.session import recording_bus
from karma.store import Store
from karma.text.inert import plain

BuildFn = Callable[..., Any]
"""`karma.engine.build`'s shape: (request, *, repo, config, store, bus) -> BuildResult."""

BUILT = frozenset({"succeeded", "escalated", "failed", "needs_approval", "budget_exceeded"})
"""Outcomes that mean the spec was built: a re-run skips it."""
CLEAN = frozenset({"succeeded", "escalated", "skipped"})


class FrontMatter(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    title: str = Field(min_length=1)
    priority: int = Field(5, ge=1, le=100)
    """1 is built first."""
    max_cost: float | None = Field(None, alias="max-cost", gt=0)
    base: str | None = None
    """The branch to build on (default: what is checked out)."""


@dataclass(frozen=True)
class Spec:
    file: Path
    key: str
    front: FrontMatter | None
    body: str
    error: str | None = None

    @property
    def request(self) -> str:
        assert self.front is not None
        return f"{self.front.title}\n\n{self.body.strip()}".strip()


@dataclass
class SpecOutcome:
    file: str
    status: str
    run_id: str | None = None
    cost_usd: float = 0.0
    reason: str = ""
    title: str = ""
    priority: int | None = None

    def public(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "status": self.status,
            "run_id": self.run_id,
            "cost_usd": round(self.cost_usd, 6),
            "reason": self.reason,
        }


@dataclass
class NightResult:
    specs: list[SpecOutcome]
    budget_usd: float
    started_at: datetime
    finished_at: datetime
    trend: dict[str, Any] = field(default_factory=dict)
    patterns: list[dict[str, Any]] = field(default_factory=list)
    digest: dict[str, str] = field(default_factory=dict)
    waiting: list[dict[str, Any]] = field(default_factory=list)
    """What this repository's runs wait for at the night's end (`waiting_for_humans`)."""
    expired: list[RunId] = field(default_factory=list)
    """Runs rejected at the night's start for waiting past `approval.timeout_h`."""

    @property
    def cost_usd(self) -> float:
        return sum(s.cost_usd for s in self.specs)

    @property
    def ok(self) -> bool:
        return all(s.status in CLEAN for s in self.specs)

    def to_json(self) -> dict[str, Any]:
        """The `karma nightly --json` contract."""
        return {
            "specs": [s.public() for s in self.specs],
            "cost_usd": round(self.cost_usd, 6),
            "budget_usd": self.budget_usd,
            "digest": self.digest,
        }


# -- the queue ------------------------------------------------------------------------------------


def parse_spec(path: Path) -> Spec:
    raw = path.read_bytes()
    key = hashlib.sha256(raw).hexdigest()
    text = raw.decode("utf-8", errors="replace")
    if not text.startswith("---"):
        return Spec(path, key, None, text, "no front matter (the file must start with ---)")
    head, sep, body = text[3:].partition("\n---")
    if not sep:
        return Spec(path, key, None, text, "the front matter is not closed by a --- line")
    try:
        data = yaml.safe_load(head)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 2}" if mark is not None else ""
        return Spec(path, key, None, body, f"front matter is not valid YAML{where}")
    if not isinstance(data, dict):
        return Spec(path, key, None, body, "front matter must be a mapping of keys")
    try:
        front = FrontMatter.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]) or "front matter"
        return Spec(path, key, None, body, f"front matter {loc}: {err['msg']}")
    body = body.partition("\n")[2]
    if not body.strip():
        return Spec(path, key, front, body, "the spec has no body")
    return Spec(path, key, front, body)


def load_queue(queue: Path) -> list[Spec]:
    if not queue.is_dir():
        raise UsageError(f"{queue}: no such queue directory", tip="karma nightly --queue DIR")
    specs = [parse_spec(p) for p in sorted(queue.glob("*.md"))]
    return sorted(specs, key=lambda s: (s.front.priority if s.front else 0, s.file.name))


def deadline_from(until: str | None, max_hours: float | None, now: datetime) -> datetime | None:
    """The earlier of `--until HH:MM` (the next such time, UTC) and `--max-hours`."""
    limits = []
    if until:
        try:
            hour, minute = (int(p) for p in until.split(":"))
            at = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
        except ValueError:
            raise UsageError(f"--until {until!r}: expected HH:MM") from None
        limits.append(at if at > now else at + timedelta(days=1))
    if max_hours is not None:
        limits.append(now + timedelta(hours=max_hours))
    return min(limits) if limits else None


# -- the night ---------------------------------------------------------------------------------


def _with_budget(config: KarmaConfig, max_cost: float) -> KarmaConfig:
    budget = config.budget.model_copy(update={"max_cost_usd": max_cost})
    return config.model_copy(update={"budget": budget})


def _done_before(store: Store, spec: Spec) -> dict[str, Any] | None:
    row = store.spec(spec.key)
    return row if row is not None and row["status"] in BUILT else None


def _record(store: Store, spec: Spec, outcome: SpecOutcome, now: datetime) -> None:
    store.record_spec(spec.key, file=str(spec.file), status=outcome.status,
                      run_id=outcome.run_id, cost_usd=outcome.cost_usd, reason=outcome.reason,
                      ts=iso(now))  # fmt: skip


@contextmanager
def night_lock(state_dir: Path) -> Iterator[None]:
    """One night at a time per repository."""
    from filelock import FileLock, Timeout

    state_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(state_dir / "nightly.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise UsageError(
            "another karma nightly is running on this repository",
            tip="wait for it to finish; a re-run continues where it stopped",
        ) from None
    try:
        yield
    finally:
        lock.release()


def _switch(repo: Path, base: str) -> str | None:
    """Check out `base`; None when done, else why not."""
    try:
        open_repo(repo).run("switch", "--quiet", base, timeout=60)
    except WorkspaceError as exc:
        return str(exc)
    return None


def _top(repo: Path) -> Path:
    """The repository's top, as its runs record it."""
    try:
        return open_repo(repo.resolve()).work_tree or repo
    except WorkspaceError:
        return repo


def _current_branch(repo: Path) -> str | None:
    try:
        git = open_repo(repo)
    except WorkspaceError:
        return None
    done = git.completed("symbolic-ref", "--short", "-q", "HEAD", timeout=60)
    return done.stdout.decode("utf-8", "replace").strip() or None


def run_night(
    queue: Path,
    *,
    repo: Path,
    config: KarmaConfig,
    store: Store,
    budget_usd: float,
    deadline: datetime | None = None,
    rebuild: bool = False,
    build_fn: BuildFn | None = None,
    subscribers: Sequence[Subscriber] = (),
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> NightResult:
    """Build the queue; each spec's outcome is recorded before the next one starts."""
    if build_fn is None:
        from karma.engine import build

        build_fn = build
    from karma.waiting import expire_waiting, waiting_for_humans

    started = now()
    specs = load_queue(queue)
    root = _top(repo)
    expired = expire_waiting(store, config.approval, root)
    outcomes: list[SpecOutcome] = []
    home = _current_branch(repo)
    seen: set[str] = set()
    try:
        for spec in specs:
            outcomes.append(
                _one(
                    spec,
                    repo=repo,
                    config=config,
                    store=store,
                    left=budget_usd - sum(o.cost_usd for o in outcomes),
                    deadline=deadline,
                    rebuild=rebuild,
                    build_fn=build_fn,
                    subscribers=subscribers,
                    now=now,
                    seen=seen,
                )
            )
    finally:
        if home and _current_branch(repo) != home:
            _switch(repo, home)
    finished = now()
    return NightResult(
        outcomes,
        budget_usd,
        started,
        finished,
        trend=memory_trend(store, iso(started)),
        patterns=patterns_learned(store, iso(started)),
        waiting=waiting_for_humans(store, root),
        expired=expired,
    )


def _one(
    spec: Spec,
    *,
    repo: Path,
    config: KarmaConfig,
    store: Store,
    left: float,
    deadline: datetime | None,
    rebuild: bool,
    build_fn: BuildFn,
    subscribers: Sequence[Subscriber],
    now: Callable[[], datetime],
    seen: set[str],
) -> SpecOutcome:
    name = spec.file.name
    if spec.front is None or spec.error:
        outcome = SpecOutcome(name, "invalid", reason=spec.error or "invalid")
        _record(store, spec, outcome, now())
        return outcome
    entry = SpecOutcome(
        name, "skipped", title=plain(spec.front.title, 200), priority=spec.front.priority
    )
    if spec.key in seen:
        entry.reason = "the same spec as another file in the queue"
        return entry
    seen.add(spec.key)
    before = None if rebuild else _done_before(store, spec)
    if before is not None:
        entry.reason = f"already built ({before['status']}, run {before['run_id']})"
        entry.run_id = before["run_id"]
        return entry
    if deadline is not None and now() >= deadline:
        entry.reason = f"the deadline ({iso(deadline)}) has passed"
        return entry
    if left <= 0:
        entry.reason = "the night's budget is spent"
        return entry
    ask = spec.front.max_cost
    if ask is not None and ask > left + 1e-9:
        entry.reason = (
            f"asks for up to ${ask:.2f} but only ${left:.2f} of the night's budget is left"
        )
        return entry
    if spec.front.base and (problem := _switch(repo, spec.front.base)):
        entry.status, entry.reason = "error", f"cannot check out base {spec.front.base}: {problem}"
        return entry
    bus = recording_bus(store, subscribers)
    try:
        result = build_fn(
            spec.request, repo=repo, config=_with_budget(config, ask or left), store=store, bus=bus
        )
    except BudgetExceeded as exc:  # the forecast is over what is left: not built, try again
        entry.reason = plain(f"the plan's forecast is over the budget left: {exc}", 500)
        return entry
    except KarmaError as exc:  # one spec's failure is an entry; the night goes on
        entry.status, entry.reason = (
            "error",
            plain(f"{exc}" + (f" ({exc.tip})" if exc.tip else ""), 500),
        )
        _record(store, spec, entry, now())
        return entry
    data = result.to_json()
    entry.status = str(data["status"])
    entry.run_id = data.get("run_id")
    entry.cost_usd = float(data.get("cost_usd") or 0.0)
    entry.reason = plain(getattr(result, "reason", "") or "", 500)
    _record(store, spec, entry, now())
    return entry


# -- what the memory learned -------------------------------------------------------------------
