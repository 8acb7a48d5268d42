"""Signatures: the same failure elsewhere hashes the same; a different one does not."""

from __future__ import annotations

from karma.heal import PatternTable
from karma.heal.signature import normalise
from tests.heal.conftest import evidence

RETURN = 'error: Incompatible return value type (got "int", expected "str")  [return-value]'
MYPY_A = f"src/app/models.py:12: {RETURN}\nFound 1 error in 1 file (checked 3 source files)\n"
MYPY_B = f"lib/other/views.py:240: {RETURN}\nFound 1 error in 1 file (checked 9 source files)\n"
MYPY_C = 'src/app/models.py:12: error: Name "foo" is not defined  [name-defined]\n'


def test_same_failure_in_another_file_has_the_same_signature(table: PatternTable) -> None:
    a = table.classify(evidence(MYPY_A, step="typecheck", tool="mypy"))
    b = table.classify(evidence(MYPY_B, step="typecheck", tool="mypy"))
    c = table.classify(evidence(MYPY_C, step="typecheck", tool="mypy"))
    assert a.failure_class == b.failure_class == c.failure_class == "type_error"
    assert a.signature == b.signature
    assert a.signature != c.signature


def test_timestamps_hex_numbers_and_temp_names_are_removed() -> None:
    line = (
        "2026-11-24T02:49:38.120Z worker 0x7f11b1 wrote /tmp/tmpab12cd/out.txt in 35ms (pid 4242)"
    )
    assert normalise(line) == "<time> worker <hex> wrote <tmp> in <n> (pid <n>)"
    assert (
        normalise("  at Object.<anonymous> (/w/app.js:1:17)")
        == "at Object.<anonymous> (<path>:<n>:<n>)"
    )


def test_test_names_do_not_change_the_signature(table: PatternTable) -> None:
    one = "FAILED tests/test_a.py::test_one - assert 1 == 2\n1 failed in 0.1s\n"
    two = "FAILED tests/test_b.py::test_two - assert 1 == 2\n1 failed in 0.3s\n"
    assert table.classify(evidence(one)).signature == table.classify(evidence(two)).signature
