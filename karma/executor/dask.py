"""The Dask executor: a build's attempts on the workers of a Dask cluster.

The coordinator (`karma build`) keeps the plan, the run store, the integration and the
gates; each attempt is one Dask task running `karma.executor.worker.run_attempt`. The
build's share (config, stack, image inputs, the base commit as a bundle) goes to every
worker once (`scatter(broadcast=True)`); each job carries only the build branch's
commits since then. Workers say what they do on the build's event
topic as they do it (`log_event` / `subscribe_topic`): a tool call reaches the live view
while the attempt runs, and an attempt that starts twice tells of a worker lost under it
(Dask runs a task again on another worker when its worker dies).

Failures of the cluster are environment problems: a scheduler that cannot be reached or
is lost mid-build stops the build resumable (exit 3); a task that keeps killing its
workers (`KilledWorker`) is an infrastructure failure of its attempt.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from karma.config import KarmaConfig
from karma.errors import KarmaError
from karma.executor.cluster import CONNECT_TIMEOUT_S, ClusterUnavailable, connect_client
from karma.executor.worker import (
    AttemptJob,
    AttemptReport,
    BuildShare,
    run_attempt,
    topic,
    warm_here,
)
from karma.sandbox.interface import SandboxUnavailable


class WorkerLost(SandboxUnavailable):
    """The workers that ran an attempt died under it more often than Dask retries."""


class DaskAttempts:
    """A build's attempts as tasks of the Dask scheduler at `address`."""

    def __init__(
        self, address: str, run_id: str, on_event: Callable[[dict[str, Any]], None],
        *, timeout_s: float = CONNECT_TIMEOUT_S,
    ) -> None:  # fmt: skip
        self.address = address
        self.client = connect_client(address, timeout_s=timeout_s)
        self._on_event = on_event
        self._starts: dict[str, list[tuple[str, str]]] = defaultdict(list)
        self._lock = threading.Lock()
        self._share: Any = None  # the scattered `BuildShare`, on every worker
        self.client.subscribe_topic(topic(run_id), self._heard)  # type: ignore[no-untyped-call]

    def _heard(self, event: tuple[float, dict[str, Any]]) -> None:
        message = event[1]
        if message.get("kind") == "attempt_started":
            with self._lock:
                self._starts[str(message["key"])].append(
                    (str(message["worker_name"]), str(message["docker_host"]))
                )
        self._on_event(message)

    def warm_up(self, models: tuple[str, ...], config: KarmaConfig) -> None:
        """Each worker makes the build's model clients and meets its engine now."""
        try:
            self.client.run(warm_here, models, config)
        except KarmaError:
            raise
        except (OSError, TimeoutError) as exc:
            message = f"the workers of {self.address} did not answer: {exc}"
            raise ClusterUnavailable(message) from exc

    def run(self, job: AttemptJob, share: Callable[[], BuildShare]) -> AttemptReport:
        """Run `job` on some worker and wait for its report."""
        from distributed import CancelledError
        from distributed.scheduler import KilledWorker

        with self._lock:
            if self._share is None:
                self._share = self.client.scatter(share(), broadcast=True, hash=False)  # type: ignore[no-untyped-call]
        future = self.client.submit(run_attempt, job, self._share, key=job.key, pure=False)
        try:
            report: AttemptReport = future.result()
            return report
        except KilledWorker as exc:
            raise WorkerLost(f"attempt {job.key}: its workers died under it ({exc})") from exc
        except KarmaError:
            raise
        except (CancelledError, OSError, TimeoutError) as exc:
            raise ClusterUnavailable(
                f"the Dask scheduler at {self.address} was lost mid-build: {exc}",
                tip="the build stopped resumable: `karma resume` finishes it, on the "
                "cluster or locally",
            ) from exc
        finally:
            future.release()  # type: ignore[no-untyped-call]

    def lost(self, job: AttemptJob) -> list[tuple[str, str]]:
        """Each start of `job` but the last: a worker that died under it."""
        with self._lock:
            return list(self._starts.get(job.key, [])[:-1])

    def close(self) -> None:
        self.client.close()  # type: ignore[no-untyped-call]
