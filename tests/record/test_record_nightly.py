"""`karma nightly`: a queue of specs built by priority under a budget, recorded so that a
second night builds nothing new; bad specs and an empty queue are entries, not crashes.

The build is a plain function with canned outcomes (the engine is tested elsewhere): it
writes a run to the real store, emits events on the real bus, and returns a result.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from karma.cli import main
from karma.config import KarmaConfig
from karma.digest import write_digest
from karma.errors import BudgetExceeded
from karma.events import EventBus
from karma.nightly import deadline_from, night_lock, parse_spec, run_night
from karma.store import Store

QUEUE = Path(__file__).parent / "queue"


@dataclass
class Result:
    run_id: str
    status: str
    cost_usd: float
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "status": self.status,
            "cost_usd": self.cost_usd,
            "branch": f"karma/{self.run_id}",
            "tasks": [],
            "gates": [],
            "report": None,
        }


@dataclass
class CannedBuild:
    """Succeeds, or escalates when the request says so; costs what the table says."""

    calls: list[dict[str, Any]] = field(default_factory=list)

    def __call__(
        self,
        request: str,
        *,
        repo: Path,
        config: KarmaConfig,
        store: Store,
        bus: EventBus,
        **_: Any,
    ) -> Result:
        run_id = f"run-{len(self.calls) + 1}"
        self.calls.append({"request": request, "max_cost": config.budget.max_cost_usd})
        if "forecast" in request:
            raise BudgetExceeded("forecast $2.40 is over the budget of $2.00")
        status = "escalated" if "escalates" in request else "succeeded"
        cost = 0.5 if status == "escalated" else 1.5
        store.create_run(run_id, request, repo, branch=f"karma/{run_id}")
        store.upsert_task(run_id, "t1", title="only", kind="code", status=status, attempts=1)
        aid = store.add_attempt(run_id, "t1", 1, model="scripted:small")
        store.update_attempt(
            aid,
            status="succeeded" if status == "succeeded" else "failed",
            finished_at="2099-01-01T00:00:00.000Z",
        )
        store.update_run(run_id, status=status, cost_usd=cost)
        bus.emit("run_finished", run_id, status=status)
        return Result(run_id, status, cost, "needs a name" if status == "escalated" else "")


@pytest.fixture
def queue(tmp_path: Path) -> Path:
    target = tmp_path / "queue"
    shutil.copytree(QUEUE, target)
    return target


def night(queue: Path, repo: Path, store: Store, build: CannedBuild, **kw: Any):
    return run_night(
        queue, repo=repo, config=KarmaConfig(), store=store, budget_usd=5.0, build_fn=build, **kw
    )


def test_three_specs_then_a_second_night_builds_nothing(
    git_repo: Path, queue: Path, tmp_path: Path
) -> None:
    store = Store(tmp_path / "karma.db")
    build = CannedBuild()
    seen: list[str] = []
    first = night(queue, git_repo, store, build, subscribers=[lambda e: seen.append(e.kind)])
    assert [(s.file, s.status) for s in first.specs] == [
        ("01-csv-export.md", "succeeded"),
        ("02-cli-name.md", "escalated"),
        ("03-rewrite-storage.md", "skipped"),
    ]
    assert "asks for up to $50.00 but only $3.00" in first.specs[2].reason
    assert [c["max_cost"] for c in build.calls] == [2.0, 2.0]
    assert first.cost_usd == 2.0 and first.ok and seen.count("run_finished") == 2

    digest = write_digest(first, tmp_path / "digest")
    md = Path(digest["md"]).read_text()
    assert "## Built" in md and "## Escalated" in md and "## Skipped" in md
    assert "Spent **$2.0000** of a $5.00 budget" in md and "## Memory" in md
    data = json.loads(Path(digest["json"]).read_text())
    assert data["trend"]["first_attempt_success"]["tonight"] == {"tasks": 2, "rate": 0.5}
    html = Path(digest["html"]).read_text()
    assert "<script" not in html and "Move storage to PostgreSQL" in html
    assert set(first.to_json()) == {"specs", "cost_usd", "budget_usd", "digest"}

    second = night(queue, git_repo, store, build)
    assert len(build.calls) == 2, "nothing is built twice"
    assert [s.status for s in second.specs] == ["skipped"] * 3
    assert second.specs[0].reason == "already built (succeeded, run run-1)"
    assert second.cost_usd == 0

    third = night(queue, git_repo, store, build, rebuild=True)
    assert len(build.calls) == 4 and third.specs[0].status == "succeeded"
    store.close()


def test_broken_specs_are_entries_and_the_queue_goes_on(
    git_repo: Path, queue: Path, tmp_path: Path
) -> None:
    (queue / "00-broken.md").write_text("---\ntitle: [unclosed\n---\nbody\n")
    (queue / "00-nofront.md").write_text("just text\n")
    (queue / "00-typo.md").write_text("---\ntitle: x\nprio: 1\n---\nbody\n")
    (queue / "00-same.md").write_text((queue / "01-csv-export.md").read_text())
    (queue / "00-big.md").write_text("---\ntitle: Big\n---\nIts forecast is too high.\n")
    store = Store(tmp_path / "karma.db")
    result = night(queue, git_repo, store, CannedBuild())
    by_file = {s.file: s for s in result.specs}
    assert by_file["00-broken.md"].status == "invalid"
    assert "not valid YAML at line" in by_file["00-broken.md"].reason
    assert "no front matter" in by_file["00-nofront.md"].reason
    assert "prio" in by_file["00-typo.md"].reason
    assert by_file["01-csv-export.md"].reason == "the same spec as another file in the queue"
    assert by_file["02-cli-name.md"].status == "escalated"
    assert by_file["00-big.md"].status == "skipped"
    assert "forecast is over the budget left" in by_file["00-big.md"].reason
    assert not result.ok
    store.close()


def test_deadline_stops_starting_specs(git_repo: Path, queue: Path, tmp_path: Path) -> None:
    store = Store(tmp_path / "karma.db")
    now = datetime(2026, 11, 24, 6, 0, tzinfo=UTC)
    result = night(queue, git_repo, store, CannedBuild(), deadline=now, now=lambda: now)
    assert {s.status for s in result.specs} == {"skipped"}
    assert "deadline" in result.specs[0].reason
    assert deadline_from("05:30", None, now) == now + timedelta(hours=23, minutes=30)
    assert deadline_from("07:00", 0.5, now) == now + timedelta(minutes=30)
    store.close()


def test_one_night_at_a_time(tmp_path: Path) -> None:
    from karma.errors import UsageError

    with night_lock(tmp_path), pytest.raises(UsageError, match="another karma nightly"):  # noqa: SIM117
        with night_lock(tmp_path):
            pass


def test_spec_key_is_the_content_hash(tmp_path: Path) -> None:
    a, b = tmp_path / "a.md", tmp_path / "b.md"
    a.write_text("---\ntitle: t\n---\nbody\n")
    b.write_text("---\ntitle: t\n---\nbody\n")
    assert parse_spec(a).key == parse_spec(b).key
    assert parse_spec(a).request == "t\n\nbody"


def test_cli_empty_queue_and_bad_queue(git_repo: Path, tmp_path: Path, capsys) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    db = str(tmp_path / "karma.db")
    code = main(
        [
            "-C",
            str(git_repo),
            "--db",
            db,
            "nightly",
            "--queue",
            str(empty),
            "--budget-usd",
            "3",
            "--json",
            "--digest-dir",
            str(tmp_path / "d"),
        ]
    )
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert data["specs"] == [] and data["budget_usd"] == 3.0
    assert "The queue was empty" in Path(data["digest"]["md"]).read_text()
    (empty / "bad.md").write_text("---\ntitle: 3\npriority: high\n---\nx\n")
    assert (
        main(
            [
                "-C",
                str(git_repo),
                "--db",
                db,
                "nightly",
                "--queue",
                str(empty),
                "--digest-dir",
                str(tmp_path / "d2"),
            ]
        )
        == 1
    )
    assert "invalid" in capsys.readouterr().out
    assert (
        main(["-C", str(git_repo), "--db", db, "nightly", "--queue", str(tmp_path / "missing")])
        == 2
    )
