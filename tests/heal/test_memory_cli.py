"""`karma classify` and `karma memory`: through the real CLI entry point."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from karma.cli import main
from karma.heal import Healer
from karma.store import Store
from tests.heal.conftest import PYTEST_FAIL, evidence

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "failures"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(list(args))
    return code, capsys.readouterr().out


def test_classify_json(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    log = GOLDEN / "type_error" / "mypy_incompatible.log"
    code, out = run(capsys, "-C", str(tmp_path), "classify", str(log), "--json", "--tool", "mypy")
    data = json.loads(out)
    assert code == 0
    assert set(data) >= {"class", "pattern", "confidence", "runner_up", "signature", "remediations"}
    assert data["class"] == "type_error" and data["remediations"][0]["name"] == "retry_with_hint"


def test_classify_stdin_and_empty(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    import io
    import sys

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"")))
    code, out = run(capsys, "-C", str(tmp_path), "classify", "-", "--json")
    assert code == 0 and json.loads(out)["class"] == "unknown"


def test_classify_unreadable_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _ = run(capsys, "-C", str(tmp_path), "classify", str(tmp_path / "nope.log"))
    assert code == 2


def test_corrupt_learned_recipe_is_a_clear_error(capsys: pytest.CaptureFixture[str],
                                                 tmp_path: Path) -> None:  # fmt: skip
    learned = tmp_path / ".karma" / "recipes" / "learned"
    learned.mkdir(parents=True)
    (learned / "bad.yaml").write_text("patterns:\n  - id: x\n    clas: lint_error\n")
    code = main(["-C", str(tmp_path), "classify", str(GOLDEN / "lint_error" / "flake8.log")])
    err = capsys.readouterr().err
    assert code == 2 and "bad.yaml" in err and "patterns.0" in err


def test_memory_stats_show_export_import(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                         make_healer: Callable[..., Healer]) -> None:  # fmt: skip
    db = tmp_path / "a.db"
    healer = Healer(Store(db), make_healer().config, make_healer().table)
    ev = evidence(PYTEST_FAIL, tool="pytest")
    cls = healer.classify(ev)
    healer.observe(ev, cls, files=["calc.py"])
    healer.record_outcome(cls, "retry_with_hint", "resolved", task_id="t1", seconds=12)
    healer.record_outcome(cls, "rerun_failed_tests", "failed", task_id="t2")

    code, out = run(capsys, "--db", str(db), "memory", "stats", "--json")
    stats = json.loads(out)["classes"]["test_failure"]
    assert code == 0 and stats["seen"] == 1 and stats["resolved"] == 1
    assert stats["remediations"]["retry_with_hint"] == {
        "tries": 1,
        "resolved": 1,
        "success_rate": 1.0,
    }
    code, out = run(capsys, "--db", str(db), "memory", "stats")
    assert "first-attempt success" in out

    code, out = run(capsys, "--db", str(db), "memory", "show", cls.signature[:8])
    assert code == 0 and json.loads(out)["files"] == ["calc.py"]

    exported = tmp_path / "memory.json"
    assert run(capsys, "--db", str(db), "memory", "export", str(exported))[0] == 0
    other = tmp_path / "b.db"
    code, out = run(capsys, "--db", str(other), "memory", "import", str(exported))
    assert code == 0 and "imported 1 failures, 2 outcomes" in out
    code, out = run(capsys, "--db", str(other), "memory", "import", str(exported))
    assert "imported 0 failures, 0 outcomes" in out
    assert Store(other).failures()[0]["count"] == 2

    (tmp_path / "junk.json").write_text("{}")
    assert run(capsys, "--db", str(other), "memory", "import", str(tmp_path / "junk.json"))[0] == 2


def test_memory_reflect_dry_run_and_apply(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                          make_healer: Callable[..., Healer]) -> None:  # fmt: skip
    db = tmp_path / "a.db"
    healer = Healer(Store(db), make_healer().config, make_healer().table)
    for n in range(3):
        ev = evidence(f"widgetc: stage {n} aborted: frobnicator quota exceeded\n", step="build")
        healer.observe(ev, healer.classify(ev))
    args = ["-C", str(tmp_path), "--db", str(db), "memory", "reflect", "--no-model"]
    code, out = run(capsys, *args)
    assert code == 0 and "+patterns:" in out
    assert not (tmp_path / ".karma" / "recipes" / "learned").exists()
    code, out = run(capsys, *args, "--apply")
    assert (tmp_path / ".karma" / "recipes" / "learned" / "reflected.yaml").is_file()


def test_classify_binary_file_and_missing_store(capsys: pytest.CaptureFixture[str],
                                                tmp_path: Path) -> None:  # fmt: skip
    log = tmp_path / "binary.log"
    log.write_bytes(bytes(range(256)) * 400)
    code, out = run(capsys, "-C", str(tmp_path), "classify", str(log), "--json")
    assert code == 0 and json.loads(out)["class"] == "unknown"
    code, out = run(capsys, "-C", str(tmp_path), "memory", "stats")
    assert code == 0 and not (tmp_path / ".karma" / "karma.db").exists()
