"""Every model exchange into the run store, and replies back out of it.

`CallRecorder` hands one `model_calls` row per call to a writer, in a `finally`, so a
failed call is on the record too (its error instead of a reply); `RecordingModel` writes
them into the run store, a Dask worker sends them back with its attempt. `ReplayModel`
answers from such a record: the reply recorded at the same position (task, attempt,
seq) when the request is the same, else the reply of an identical request elsewhere in
the run; a request the record has never seen is a `ReplayDiverged` naming the first
place it differs.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from typing import Any

from karma.ids import RunId, TaskId
from karma.models import interface
from karma.models.codec import (
    canonical,
    reply_from_json,
    reply_to_json,
    request_hash,
    request_text,
)
from karma.models.interface import ModelClient, ModelReply, ModelRequest, ProviderError
from karma.store import ModelCallRow, Store


class ReplayDiverged(ProviderError):
    """The request is not one the recorded run made at this point."""


class CallRecorder:
    """Wraps a `ModelClient`; each call becomes one `model_calls` row handed to `write`,
    numbered from `first_seq` (a worker's attempt sends its rows to the coordinator)."""

    def __init__(
        self,
        inner: ModelClient,
        write: Callable[..., object],
        where: tuple[str | None, str | None, int | None],
        first_seq: int = 0,
    ) -> None:
        self.inner = inner
        self.name = inner.name
        self._write = write
        self._where = where
        self._lock = threading.Lock()
        self._next = first_seq

    def complete(self, request: ModelRequest) -> ModelReply:
        with self._lock:
            seq = self._next
            self._next += 1
        request_json = request_text(request)
        reply: ModelReply | None = None
        error: BaseException | None = None
        start = time.perf_counter()
        try:
            reply = self.inner.complete(request)
            return reply
        except BaseException as exc:
            error = exc
            raise
        finally:
            run_id, task_id, attempt = self._where
            usage = reply.usage if reply is not None else interface.Usage()
            self._write(
                run_id=run_id,
                task_id=task_id,
                attempt=attempt,
                seq=seq,
                purpose=request.purpose,
                model=self.name,
                request_hash=hashlib.sha256(request_json.encode()).hexdigest(),
                request_json=request_json,
                reply_json=None if reply is None else canonical(reply_to_json(reply)),
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                cache_read_tokens=usage.cache_read_tokens,
                cache_write_tokens=usage.cache_write_tokens,
                cost_usd=0.0 if reply is None else reply.cost_usd,
                latency_ms=(time.perf_counter() - start) * 1000,
                error=None if error is None else f"{type(error).__name__}: {error}",
            )


class RecordingModel(CallRecorder):
    """Each call becomes one `model_calls` row of (run, task, attempt) in the run store."""

    def __init__(
        self,
        inner: ModelClient,
        store: Store,
        run_id: RunId | None,
        task_id: TaskId | None = None,
        attempt: int | None = None,
    ) -> None:
        super().__init__(inner, store.add_model_call, (run_id, task_id, attempt),
                         next_seq(store, run_id, task_id, attempt))  # fmt: skip


def next_seq(
    store: Store, run_id: RunId | None, task_id: TaskId | None, attempt: int | None
) -> int:
    """The `seq` of the next model call of (run, task, attempt)."""
    return store.next_call_seq(run_id, task_id, attempt)


class ReplayModel:
    """Answers from the `model_calls` of a recorded run; `scoped()` for one task attempt."""

    def __init__(
        self,
        store: Store,
        run_id: RunId,
        task_id: TaskId | None = None,
        attempt: int | None = None,
        *,
        name: str | None = None,
        strict: bool = True,
        divergences: list[str] | None = None,
        _rows: list[ModelCallRow] | None = None,
    ) -> None:
        self.name = name or f"replay:{run_id}"
        self.strict = strict
        """Strict: a request that differs from the recording raises `ReplayDiverged`.
        Lenient: the recorded reply is given anyway and the difference is noted in
        `divergences` (tool output such as test timings differs from run to run)."""
        self.divergences = divergences if divergences is not None else []
        self._store = store
        self._run_id = run_id
        self._rows = _rows if _rows is not None else store.model_calls(run_id)
        self._task_id = task_id
        self._attempt = attempt
        self._seq = 0
        self._lock = threading.Lock()

    def scoped(self, task_id: TaskId | None, attempt: int | None) -> ReplayModel:
        """The replay of one task attempt (its own seq counter, the same record)."""
        return ReplayModel(
            self._store,
            self._run_id,
            task_id,
            attempt,
            name=self.name,
            strict=self.strict,
            divergences=self.divergences,
            _rows=self._rows,
        )

    def complete(self, request: ModelRequest) -> ModelReply:
        with self._lock:
            seq = self._seq
            self._seq += 1
        digest = request_hash(request)  # of the redacted form, as recorded
        here = [
            r
            for r in self._rows
            if r.task_id == self._task_id and r.attempt == self._attempt and r.seq == seq
        ]
        for row in here:
            if row.request_hash == digest:
                return _answer(row)
        same = [r for r in self._rows if r.request_hash == digest]
        same.sort(key=lambda r: r.reply_json is None)  # a recorded success first
        if same:
            return _answer(same[0])
        task = "-" if self._task_id is None else self._task_id
        attempt = "-" if self._attempt is None else self._attempt
        where = f"task {task} attempt {attempt} call {seq}"
        if not here:
            raise ReplayDiverged(
                f"replay of run {self._run_id}: {where} was never recorded",
                tip="the code or prompts changed since the run; record it again",
            )
        path = first_difference(json.loads(here[0].request_json), json.loads(request_text(request)))
        if not self.strict:
            with self._lock:
                self.divergences.append(f"{where}: {path}")
            return _answer(here[0])
        raise ReplayDiverged(
            f"replay of run {self._run_id}: {where} differs from the recording at {path}",
            tip="the code or prompts changed since the run; record it again",
        )


def _answer(row: ModelCallRow) -> ModelReply:
    if row.reply_json is not None:
        return reply_from_json(row.reply_json)
    kind_name, _, message = str(row.error or "ProviderError: failed").partition(": ")
    kind = getattr(interface, kind_name, None)
    if not (isinstance(kind, type) and issubclass(kind, ProviderError)):
        kind = ProviderError
    raise kind(f"(replayed) {message}")


def first_difference(recorded: Any, now: Any, path: str = "request") -> str:
    """Where two JSON values first differ, e.g. `request.messages[2].text`."""
    if isinstance(recorded, dict) and isinstance(now, dict):
        for key in sorted(set(recorded) | set(now)):
            if key not in recorded or key not in now:
                return f"{path}.{key} (present in only one)"
            if recorded[key] != now[key]:
                return first_difference(recorded[key], now[key], f"{path}.{key}")
        return path
    if isinstance(recorded, list) and isinstance(now, list):
        for index, (old, new) in enumerate(zip(recorded, now, strict=False)):
            if old != new:
                return first_difference(old, new, f"{path}[{index}]")
        return f"{path} (length {len(recorded)} recorded, {len(now)} now)"
    return f"{path} ({_short(recorded)} recorded, {_short(now)} now)"


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."
