"""KARMA on a GitHub Actions runner: the log, the masks, the annotations, the summary, the outputs.

On a runner nobody watches, so what KARMA writes is the interface. This module owns that
writing: `github_sink` is an event-bus subscriber printing one line per event (a task's
lines grouped in `::group::` when it ends) after `::add-mask::` for every secret;
`finish_ci` writes the error annotations, `$GITHUB_STEP_SUMMARY` and `$GITHUB_OUTPUT`.

Model text is untrusted: every piece of it goes through `karma.text.inert.log_safe` before a
log line, so it cannot start a line, carry ANSI, or smuggle a `::workflow-command::`. The action's
own step (inputs, build or gate) is `karma.action`.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from karma.events import Event
from karma.text.inert import log_safe

SUMMARY_LIMIT = 1024 * 1024
"""GitHub refuses a step summary above 1 MiB; we keep a margin under it."""
SUMMARY_BUDGET = SUMMARY_LIMIT - 64 * 1024
ANNOTATION_CAP = 10
"""GitHub shows at most 10 error annotations per step; the rest are counted in the summary."""
SECRET_ENV = (
    "ANTHROPIC_API_KEY",
    "OPENAI_API_KEY",
    "GITHUB_TOKEN",
    "GH_TOKEN",
    "KARMA_INPUT_ANTHROPIC_API_KEY",
    "KARMA_INPUT_OPENAI_API_KEY",
)


def escape_data(text: str) -> str:
    """A workflow command's message (as in @actions/core)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def is_ci(environ: Mapping[str, str]) -> bool:
    return environ.get("GITHUB_ACTIONS", "").lower() == "true"


def mask_lines(environ: Mapping[str, str], extra: Sequence[str] = ()) -> list[str]:
    """`::add-mask::` for each secret value (each line of a multi-line one)."""
    from karma.text.redact import secret_env

    named = [environ.get(name, "") for name in SECRET_ENV]
    values = named + list(secret_env(environ).values()) + list(extra)
    lines: list[str] = []
    for value in values:
        for part in value.splitlines():
            if len(part.strip()) >= 4 and f"::add-mask::{part}" not in lines:
                lines.append(f"::add-mask::{part}")
    return lines


# -- the log ----------------------------------------------------------------------------------

_DETAIL_KEYS = (
    "attempt",
    "model",
    "tier",
    "status",
    "class",
    "remediation",
    "reason",
    "commit",
    "name",
    "cost_usd",
    "branch",
    "message",
    "files",
)
_TASK_END = frozenset({"task_succeeded", "task_failed", "task_escalated", "task_skipped"})


def event_line(event: Event) -> str:
    who = f" {log_safe(event.task_id, 80)}" if event.task_id else ""
    detail = " ".join(
        f"{key}={log_safe(event.data[key], 160)}" for key in _DETAIL_KEYS if key in event.data
    )
    return f"karma {event.kind}{who} {detail}".rstrip()


@dataclass
class GitHubLog:
    """Subscriber: run events at once; a task's events in one `::group::` when it ends.

    Parallel tasks interleave, and groups cannot nest, so a task's lines wait for its end;
    its start is still printed at once so the log shows progress.
    """

    stream: IO[str]
    buffers: dict[str, list[str]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, event: Event) -> None:
        if event.kind in {"model_called", "tool_called"}:
            return
        line = event_line(event)
        with self._lock:
            if event.task_id is None:
                self._write([line])
                return
            lines = self.buffers.setdefault(event.task_id, [])
            lines.append(line)
            if event.kind == "task_started":
                self._write([line])
            if event.kind in _TASK_END:
                self._flush(event.task_id, event.kind.removeprefix("task_"))

    def _flush(self, task_id: str, status: str) -> None:
        lines = self.buffers.pop(task_id, [])
        if lines:
            self._write(
                [f"::group::task {log_safe(task_id, 80)}: {status}", *lines, "::endgroup::"]
            )

    def close(self) -> None:
        with self._lock:
            for task_id in list(self.buffers):
                self._flush(task_id, "unfinished")

    def _write(self, lines: list[str]) -> None:
        self.stream.write("".join(line + "\n" for line in lines))
        self.stream.flush()


def github_sink(environ: Mapping[str, str], stream: IO[str] | None = None) -> GitHubLog | None:
    """On a runner: print the masks now, and return the log subscriber; else None."""
    if not is_ci(environ):
        return None
    target = stream if stream is not None else sys.stderr
    masks = mask_lines(environ)
    if masks:
        target.write("".join(line + "\n" for line in masks))
        target.flush()
    return GitHubLog(target)


# -- annotations, summary, outputs --------------------------------------------------------------


def blocking_findings(gates: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    found = []
    for gate in gates:
        if not gate.get("blocking") or gate.get("status") not in {"failed", "error"}:
            continue
        for finding in gate.get("findings") or ():
            if finding.get("new", True) and finding.get("severity") in {
                "error",
                "blocker",
                "major",
            }:
                found.append({"gate": gate.get("name", "?"), **finding})
    return found


def annotation_lines(gates: Sequence[Mapping[str, Any]], cap: int = ANNOTATION_CAP) -> list[str]:
    lines = []
    findings = blocking_findings(gates)
    for finding in findings[:cap]:
        props = [f"title={escape_property(log_safe(str(finding.get('rule', 'karma')), 100))}"]
        if finding.get("path"):
            props.insert(0, f"file={escape_property(str(finding['path']))}")
            props.insert(1, f"line={max(1, int(finding.get('line') or 1))}")
        message = log_safe(f"{finding['gate']}: {finding.get('message', '')}", 500)
        lines.append(f"::error {','.join(props)}::{escape_data(message)}")
    if len(findings) > cap:
        lines.append(f"::warning::{len(findings) - cap} more blocking finding(s); see the summary")
    return lines


def outputs_of(result: Mapping[str, Any], sarif: str | None = None) -> dict[str, str]:
    return {
        "status": str(result.get("status", "")),
        "run-id": str(result.get("run_id") or ""),
        "branch": str(result.get("branch") or ""),
        "cost-usd": f"{float(result.get('cost_usd') or 0.0):.6f}",
        "report": str(result.get("report") or ""),
        "sarif": sarif or str(result.get("sarif") or ""),
    }


def write_outputs(path: Path, outputs: Mapping[str, str]) -> None:
    with path.open("a", encoding="utf-8") as fh:
        for key, value in outputs.items():
            # One line per value: a newline could forge another output.
            fh.write(f"{key}={log_safe(value, 2000)}\n")


def cap_summary(text: str, budget: int = SUMMARY_BUDGET) -> str:
    data = text.encode("utf-8")
    if len(data) <= budget:
        return text
    note = (
        "\n\n> The summary was cut to stay within GitHub's size limit;"
        " the full report is an artifact.\n"
    )
    cut = data[: budget - len(note.encode())].decode("utf-8", errors="ignore")
    if cut.count("```") % 2:  # do not leave a code block open
        cut += "\n```"
    return cut + note


def finish_ci(
    result_json: Mapping[str, Any],
    environ: Mapping[str, str],
    *,
    store: Any = None,
    sarif: str | None = None,
    stream: IO[str] | None = None,
) -> list[str]:
    """Annotations, step summary and outputs of a finished build or gate run.

    `store` (a `karma.store.Store`) adds the plan, escalations and attempts to the summary.
    Returns what could not be written (a missing `GITHUB_STEP_SUMMARY` or `GITHUB_OUTPUT`),
    already said on the log as warnings; KARMA's own exit code does not change.
    """
    from karma.report import summary_markdown

    target = stream if stream is not None else sys.stderr
    lines = annotation_lines(result_json.get("gates") or ())
    warnings: list[str] = []
    summary = cap_summary(summary_markdown(result_json, store))
    writers: dict[str, Callable[[Path], None]] = {
        "GITHUB_STEP_SUMMARY": lambda p: _append(p, summary + "\n"),
        "GITHUB_OUTPUT": lambda p: write_outputs(p, outputs_of(result_json, sarif)),
    }
    for name, write in writers.items():
        where = environ.get(name, "")
        if not where:
            warnings.append(f"{name} is not set: {_WHAT[name]} not written")
            continue
        try:
            write(Path(where))
        except OSError as exc:
            warnings.append(f"{name} ({where}): {_WHAT[name]} not written: {exc.strerror}")
    lines += [f"::warning::{escape_data(w)}" for w in warnings]
    if lines:
        target.write("".join(line + "\n" for line in lines))
        target.flush()
    return warnings


_WHAT = {"GITHUB_STEP_SUMMARY": "the step summary was", "GITHUB_OUTPUT": "the step outputs were"}


def _append(path: Path, text: str) -> None:
    with path.open("a", encoding="utf-8") as fh:
        fh.write(text)
