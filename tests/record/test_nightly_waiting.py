"""A night goes on while a build waits for a human, and its digest says what waits and
since when (tonight's runs and older ones), with the command that decides; runs that
waited past `approval.timeout_h` with `on_timeout = "reject"` are rejected first.

The build is a plain function writing real rows to the real store (the engine's waiting
state is tested end to end in tests/engine/test_humans.py). Attack: a waiting record's
reason is model text; in the digest it cannot open HTML, a link or a mention."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from karma.config import ApprovalConfig, KarmaConfig
from karma.digest import write_digest
from karma.events import EventBus, iso, utcnow
from karma.nightly import run_night
from karma.store import Store
from karma.workspace import Workspace

EVIL = "<img src=x onerror=alert(1)> [click](https://evil) @octo/admins"


class WaitingBuild:
    """The spec saying "workflow" waits for an approval, "stuck" for an answer; the rest
    succeed."""

    def __init__(self) -> None:
        self.requests: list[str] = []

    def __call__(self, request: str, *, repo: Path, store: Store, bus: EventBus,
                 **_: Any) -> Any:  # fmt: skip
        run_id = f"night-{len(self.requests) + 1}"
        self.requests.append(request)
        status = "succeeded"
        store.create_run(run_id, request, Workspace(repo).root, branch=f"karma/{run_id}")
        if "workflow" in request:
            status = "needs_approval"
            detail = {"commit": "c" * 40, "paths": [".github/workflows/ci.yml"], "gates": []}
            store.add_pending(run_id, "approval", detail)
        elif "stuck" in request:
            status = "escalated"
            store.add_pending(run_id, "escalation", {"reason": EVIL, "attempts": []}, "csv")
        store.update_run(run_id, status=status, cost_usd=0.25)

        class Result:
            reason = ""

            def to_json(self) -> dict[str, Any]:
                return {"run_id": run_id, "status": status, "cost_usd": 0.25}

        return Result()


def _queue(tmp_path: Path) -> Path:
    queue = tmp_path / "queue"
    queue.mkdir()
    for n, body in enumerate(["Edit the workflow", "A stuck task", "Add a flag"], 1):
        (queue / f"0{n}.md").write_text(f"---\ntitle: spec {n}\npriority: {n}\n---\n{body}\n")
    return queue


def test_the_night_goes_on_and_the_digest_lists_what_waits(git_repo: Path, tmp_path: Path) -> None:
    store = Store(tmp_path / "karma.db")
    root = Workspace(git_repo).root
    # A run from an earlier night still waits, for longer than the timeout.
    store.create_run("older", "x", root, status="needs_approval")
    old = store.add_pending("older", "approval", {"commit": "a" * 40, "paths": ["x.yml"],
                                                  "gates": ["approval"]})  # fmt: skip
    store.query("UPDATE pending SET since = ? WHERE id = ?",
                (iso(utcnow() - timedelta(hours=30)), old))  # fmt: skip
    build = WaitingBuild()
    night = run_night(_queue(tmp_path), repo=git_repo, config=KarmaConfig(), store=store,
                      budget_usd=5.0, build_fn=build)  # fmt: skip
    # The waiting builds did not hold the night: the third spec was built.
    assert [s.status for s in night.specs] == ["needs_approval", "escalated", "succeeded"]
    assert len(build.requests) == 3
    waits = {w["run_id"]: w for w in night.waiting}
    assert list(waits) == ["older", "night-1", "night-2"]  # oldest first
    assert waits["older"]["spec"] is None and waits["night-1"]["spec"] == "01.md"
    assert waits["night-1"]["commands"] == ["karma approve night-1", "karma reject night-1"]
    assert waits["night-2"]["commands"] == ['karma answer night-2 --task csv "hint"']
    assert waits["night-1"]["since"] and "ci.yml" in waits["night-1"]["what"]

    paths = write_digest(night, tmp_path / "digest")
    md = Path(paths["md"]).read_text()
    assert "## Waiting for a human" in md and "waits since" in md
    assert "karma approve night-1" in md and waits["older"]["since"] in md
    html = Path(paths["html"]).read_text()
    assert "Waiting for a human" in html and "karma answer night-2" in html
    assert "<img" not in html and "&lt;img" in html  # escaped text, never a tag
    assert "<img" not in md and "](https://evil)" not in md and "@octo" not in md
    data = json.loads(Path(paths["json"]).read_text())
    assert [w["run_id"] for w in data["waiting"]] == ["older", "night-1", "night-2"]
    assert data["expired"] == []
    store.close()


def test_a_night_first_rejects_what_waited_past_the_timeout(git_repo: Path, tmp_path: Path) -> None:
    store = Store(tmp_path / "karma.db")
    root = Workspace(git_repo).root
    store.create_run("older", "x", root, status="needs_approval")
    old = store.add_pending("older", "approval", {"commit": "a" * 40, "paths": [], "gates": []})
    store.query("UPDATE pending SET since = ? WHERE id = ?",
                (iso(utcnow() - timedelta(hours=30)), old))  # fmt: skip
    config = KarmaConfig(approval=ApprovalConfig(timeout_h=24, on_timeout="reject"))
    night = run_night(_queue(tmp_path), repo=git_repo, config=config, store=store,
                      budget_usd=5.0, build_fn=WaitingBuild())  # fmt: skip
    assert night.expired == ["older"]
    row = store.run("older")
    assert row is not None and row.status == "failed"
    assert "older" not in {w["run_id"] for w in night.waiting}
    md = Path(write_digest(night, tmp_path / "d")["md"]).read_text()
    assert "rejected by karma" in md
    store.close()
