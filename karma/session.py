"""A command's record and its listeners: the run store, and an event bus that writes
every event into it before anyone else hears it (the terminal view, the CI log).

`karma build`, `karma resume`, the GitHub Action step and each spec of a night all set
up the same pair; this is the one place that does.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from karma.events import EventBus, Subscriber
from karma.store import Store


def recording_bus(store: Store, listeners: Iterable[Subscriber] = ()) -> EventBus:
    """A bus whose events go into `store` first, then to each of `listeners`."""
    bus = EventBus()
    bus.subscribe(store.record_event)
    for listener in listeners:
        bus.subscribe(listener)
    return bus


@contextmanager
def session(db: Path, listeners: Iterable[Subscriber] = ()) -> Iterator[tuple[Store, EventBus]]:
    """The run store at `db` and its recording bus; the store is closed at the end."""
    store = Store(db)
    try:
        yield store, recording_bus(store, listeners)
    finally:
        store.close()
