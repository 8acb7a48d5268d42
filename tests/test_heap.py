"""The long-lived heap: a block's objects made with the collector paused, then frozen."""

from __future__ import annotations

import gc

from karma.heap import long_lived


def test_the_collector_is_paused_in_the_block_and_what_it_made_frozen_after() -> None:
    assert gc.isenabled()
    before = gc.get_freeze_count()
    with long_lived():
        assert not gc.isenabled()
        made = [type(f"Class{n}", (), {}) for n in range(100)]  # classes are cyclic
    assert gc.isenabled() and gc.get_freeze_count() >= before + len(made)


def test_a_collector_the_caller_had_paused_stays_paused() -> None:
    gc.disable()
    try:
        with long_lived():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
