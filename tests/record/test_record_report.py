"""Run reports from a real run record: HTML (self-contained, inert), Markdown, JSON, CLI."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

from runfixture import FinishedRun

from karma.cli import main
from karma.report import load_run, max_parallel, render, timeline, to_json, write_run_report
from karma.store import Store


class Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs += attrs

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(text: str) -> Page:
    page = Page()
    page.feed(text)
    page.close()
    return page


def test_html_report_is_self_contained_and_inert(finished_run: FinishedRun, tmp_path: Path) -> None:
    path = write_run_report(finished_run.store, finished_run.run_id, tmp_path)
    text = path.read_text()
    page = parse(text)
    assert "script" not in page.tags, "model text must not become a script element"
    assert "<script>" not in text and "&lt;script&gt;" in text
    assert "\x1b" not in text
    assert not [v for k, v in page.attrs if k in {"src", "href"} and v and "://" in v]
    assert not [k for k, _ in page.attrs if k.startswith("on")], "no event handler attributes"
    # the request, the DAG (4 nodes, 4 edges), the timeline (5 attempts), totals, escalation
    assert "Add CSV export and a low-stock report" in "".join(page.text)
    assert page.tags.count("svg") == 2
    assert text.count('class="node"') == 4 and text.count('class="edge"') == 4
    assert text.count('class="bar"') == 5
    assert "test_failure" in text and "retry_with_hint" in text
    assert "karma.python.eval-input" in text and "Decide the CLI name" in text
    assert "3 of 4" in text and "$0.0123" in text


def test_timeline_shows_the_parallel_attempts(finished_run: FinishedRun) -> None:
    bars = timeline(load_run(finished_run.store, finished_run.run_id))
    assert [(b["task"], b["attempt"]) for b in bars] == [
        ("t1", 1),
        ("t2", 1),
        ("t2", 2),
        ("t3", 1),
        ("t4", 1),
    ]
    assert bars[0]["start_s"] == 1.0
    assert max_parallel(bars) == 2  # t2 and t3 overlapped


def test_markdown_report_is_inert(finished_run: FinishedRun) -> None:
    text = render(load_run(finished_run.store, finished_run.run_id), "md")
    outside_fences = text.split("````text")[0]
    assert "<script>" not in outside_fences
    assert "[x](http" not in outside_fences and "**bold**" not in outside_fences
    assert "\x1b" not in text
    # the escalation report keeps its own ``` inside a longer fence
    assert "````text\n# Escalation" in text and "fence\n````" in text
    assert "```mermaid" in text and "t0 --> t1" in text


def test_json_report_contract(finished_run: FinishedRun) -> None:
    data = to_json(load_run(finished_run.store, finished_run.run_id))
    assert {
        "run_id",
        "status",
        "request",
        "plan",
        "tasks",
        "gates",
        "escalations",
        "timeline",
        "totals",
    } <= set(data)
    t2 = next(t for t in data["tasks"] if t["id"] == "t2")
    assert [a["failure_class"] for a in t2["attempt_log"]] == ["test_failure", None]
    assert data["totals"]["attempts"] == 5 and data["totals"]["model_calls"] == 10
    assert "\x1b" not in json.dumps(data)


def test_report_runs_show_commands(finished_run: FinishedRun, capsys) -> None:
    db = str(finished_run.store.path)
    repo = str(finished_run.repo)
    assert main(["-C", repo, "--db", db, "report", finished_run.run_id[:12]]) == 0
    path = Path(capsys.readouterr().out.strip())
    assert path.suffix == ".html" and path.exists()
    assert main(["-C", repo, "--db", db, "report", finished_run.run_id, "-f", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["run_id"] == finished_run.run_id
    assert main(["-C", repo, "--db", db, "runs", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["id"] == finished_run.run_id
    assert main(["-C", repo, "--db", db, "show", finished_run.run_id]) == 0
    shown = capsys.readouterr().out
    assert "escalated" in shown and "test_failure" in shown and "\x1b[31m" not in shown


def test_unknown_run_is_a_usage_error(finished_run: FinishedRun, capsys) -> None:
    db = str(finished_run.store.path)
    assert main(["-C", str(finished_run.repo), "--db", db, "report", "nope"]) == 2
    assert "no run 'nope'" in capsys.readouterr().err


def test_credentials_in_model_text_are_redacted(finished_run: FinishedRun, tmp_path: Path) -> None:
    key = "sk-ant-api03-" + "Zz9Yy8Xx7Ww6Vv5Uu4Tt" * 3
    attempt = finished_run.store.attempts(finished_run.run_id, "t1")[0]
    finished_run.store.update_attempt(attempt.id, summary=f"used {key} to log in")
    record = load_run(finished_run.store, finished_run.run_id)
    for fmt in ("html", "md", "json"):
        text = render(record, fmt)  # type: ignore[arg-type]
        assert key not in text and "REDACTED" in text, fmt


def test_runs_list_and_export_are_inert(finished_run: FinishedRun, capsys) -> None:
    """The hostile request (ANSI, a `::` command after a newline) in every `karma runs` form."""
    db = str(finished_run.store.path)
    repo = str(finished_run.repo)
    for args in (["runs"], ["runs", "--json"], ["runs", "export", finished_run.run_id]):
        assert main(["-C", repo, "--db", db, *args]) == 0, args
        text = capsys.readouterr().out
        assert "\x1b" not in text, args
        assert not [ln for ln in text.splitlines() if ln.lstrip().startswith("::")], args
    assert main(["-C", repo, "--db", db, "runs", "export", finished_run.run_id]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["tables"]["runs"][0]["id"] == finished_run.run_id


def test_the_cache_read_share_per_task_and_run(tmp_path: Path, capsys) -> None:
    store = Store(tmp_path / "karma.db")
    store.create_run("r-cache", "cache", tmp_path, status="succeeded")
    for task in ("t1", "t2"):
        store.upsert_task("r-cache", task, title=task, kind="code", status="succeeded")
    for seq, (read, fresh, written) in enumerate(((0, 800, 200), (900, 100, 0))):
        store.add_model_call(run_id="r-cache", task_id="t1", attempt=1, seq=seq, purpose="agent",
                             model="anthropic:m", request_hash="h", request_json="{}",
                             input_tokens=fresh, cache_read_tokens=read,
                             cache_write_tokens=written, ts="2026-12-03T00:00:00Z")  # fmt: skip
    record = load_run(store, "r-cache")
    assert record.cache_share("t1") == 0.45  # 900 of 2,000 input tokens
    assert record.cache_share("t2") is None  # no model call: nothing to share
    assert record.totals()["cache_read_share"] == 0.45
    store.close()
    assert main(["-C", str(tmp_path), "--db", str(tmp_path / "karma.db"), "show", "r-cache"]) == 0
    shown = capsys.readouterr().out
    assert "cache read 45%" in shown
    assert main(["-C", str(tmp_path), "--db", str(tmp_path / "karma.db"), "report", "r-cache",
                 "-f", "json"]) == 0  # fmt: skip
    tasks = {t["id"]: t for t in json.loads(capsys.readouterr().out)["tasks"]}
    assert tasks["t1"]["cache_read_share"] == 0.45 and tasks["t2"]["cache_read_share"] is None
