"""Classification on bad input: empty, binary, huge, foreign-language logs never crash."""

from __future__ import annotations

import os
import tracemalloc

from karma.heal import Evidence, PatternTable
from tests.heal.conftest import PYTEST_FAIL, evidence


def test_empty_log_is_unknown(table: PatternTable) -> None:
    result = table.classify(evidence("", step="build"))
    assert result.failure_class == "unknown" and result.key_lines == ()


def test_binary_log_is_classified(table: PatternTable) -> None:
    result = table.classify(Evidence.from_log(os.urandom(20_000), exit_code=1))
    assert result.failure_class == "unknown"


def test_fifty_megabyte_log_is_bounded(table: PatternTable) -> None:
    error = 'src/app.py:3: error: Name "x" is not defined  [name-defined]\n'
    text = ("INFO building module\n" * 2_700_000)[: 50 * 1024 * 1024] + "\n" + error
    tracemalloc.start()
    ev = Evidence.from_log(text, step="typecheck", tool="mypy")
    result = table.classify(ev)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert result.failure_class == "type_error"
    assert len(ev.output_tail) <= 32_000
    assert peak < 5 * 1024 * 1024  # the tail is cut before anything copies the whole log


def test_foreign_language_logs(table: PatternTable) -> None:
    german = table.classify(evidence("Fehler: Die Konfiguration konnte nicht gelesen werden\n"))
    assert german.failure_class == "unknown"
    # a known error keeps its class whatever language surrounds it
    mixed = "ビルド開始\nE   ModuleNotFoundError: No module named 'yaml'\nビルド失敗\n"
    assert table.classify(evidence(mixed)).failure_class == "import_error"


def test_conditions_on_limit_and_exit_code(table: PatternTable) -> None:
    assert (
        table.classify(evidence("", limit="memory", exit_code=137)).failure_class == "out_of_memory"
    )
    assert table.classify(evidence("", limit="timeout", exit_code=137)).failure_class == "timeout"
    assert table.classify(evidence("", exit_code=124)).failure_class == "timeout"
    assert table.classify(evidence("", exit_code=127)).failure_class == "missing_tool"


def test_classification_reports_runner_up(table: PatternTable) -> None:
    text = PYTEST_FAIL.replace("1 failed, 2 passed", "1 failed, 2 passed, 2 rerun")
    result = table.classify(evidence(text, tool="pytest"))
    assert result.failure_class == "flaky_test"
    assert result.runner_up is not None and result.runner_up.failure_class == "test_failure"
    plain = table.classify(evidence(PYTEST_FAIL, tool="pytest"))
    assert plain.failure_class == "test_failure" and plain.confidence > 0.8
