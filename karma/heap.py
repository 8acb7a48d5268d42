"""The interpreter's heap: the objects made once that live as long as the process.

Importing the engine or a model SDK makes thousands of classes and functions that are
never freed. While they are made the collector is paused (its collections would walk
them again and again: a tenth of the engine's import, a third of an SDK's), and after
it they are frozen, so no later collection, nor the exit, walks them again.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def long_lived() -> Iterator[None]:
    """Make the block's objects (a module's import) with the collector paused, then freeze
    everything made so far; the collector runs again after, if it ran before."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()
