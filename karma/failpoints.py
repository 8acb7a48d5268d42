"""Named crash points for the crash-consistency tests (`kill -9` at a chosen moment).

`KARMA_FAILPOINTS="during_merge"` (or `name:N` for the N-th time it is reached; several
separated by commas) makes the process kill itself with SIGKILL at that point, exactly as
an outside `kill -9` would, but deterministically. Unset, a failpoint costs one dict
lookup. The points: after_model_reply, after_file_write, after_commit, during_merge.
"""

from __future__ import annotations

import os
import signal
import threading
from collections import Counter

_lock = threading.Lock()
_hits: Counter[str] = Counter()


def _armed() -> dict[str, int]:
    armed: dict[str, int] = {}
    for item in os.environ.get("KARMA_FAILPOINTS", "").split(","):
        name, _, count = item.strip().partition(":")
        if name:
            armed[name] = int(count) if count.isdigit() else 1
    return armed


def failpoint(name: str) -> None:
    """Die here, now, with SIGKILL, if the environment armed this point for this hit."""
    armed = _armed()
    if name not in armed:
        return
    with _lock:
        _hits[name] += 1
        if _hits[name] == armed[name]:
            os.kill(os.getpid(), signal.SIGKILL)
