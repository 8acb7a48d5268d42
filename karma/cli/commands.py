"""The command table: each top-level command's name, the modules that register it, and
the one-line summary `karma --help` prints for it (`karma.cli.group` reads it).

The help lists every command from here without importing a command module; a command's
module loads when the command is used. The order is the help's order.
tests/cli/test_commands.py holds the table to the modules: every registered command is
listed, and each summary is the first sentence of the command's own help.
"""

from __future__ import annotations

from typing import NamedTuple


class Entry(NamedTuple):
    modules: tuple[str, ...]
    """The modules whose import registers the command (a group may gather several)."""
    summary: str
    """The first sentence of the command's help, as its docstring says it."""


def _entry(*modules: str, summary: str) -> Entry:
    return Entry(tuple(f"karma.cli.{module}" for module in modules), summary)


COMMANDS: dict[str, Entry] = {
    "build": _entry(
        "build", summary="Plan, build, heal and gate a feature request on a new branch."
    ),
    "resume": _entry(
        "build",
        summary="Continue a build that was interrupted or killed "
        "(without RUN_ID: this repo's one).",
    ),
    "replay": _entry(
        "build",
        summary="Re-run a recorded build from its recorded replies (no model calls); "
        "report divergence.",
    ),
    "doctor": _entry(
        "doctor",
        summary="Check Docker, the base image, tools, model keys and the configuration.",
    ),
    "gate": _entry(
        "gate",
        summary="Run the quality gates on the working tree; exit 0 when every blocking gate "
        "passes.",
    ),
    "classify": _entry(
        "heal", summary="Classify a failure log the way a failed attempt is classified."
    ),
    "approve": _entry(
        "humans",
        summary="Approve what a run waits for, and continue it (the gates re-run on its head).",
    ),
    "reject": _entry(
        "humans",
        summary="Reject what a run waits for, or override an elevated remedy it went on with: "
        "the run ends `failed`, the note as its reason.",
    ),
    "answer": _entry(
        "humans",
        summary="Answer an escalated task with a hint; it gets another round of attempts.",
    ),
    "report": _entry(
        "record", summary="Write a run's report: self-contained HTML, Markdown or JSON."
    ),
    "show": _entry(
        "record",
        summary="Summarise one run in the terminal: request, tasks, attempts, gates, escalations.",
    ),
    "why": _entry(
        "record",
        summary="Why did KARMA write this? From a line to its task, model, prompt, plan and "
        "request.",
    ),
    "nightly": _entry(
        "record",
        summary="Build a queue of specs unattended, by priority, under a budget and a deadline.",
    ),
    "plan": _entry(
        "plan",
        summary="Plan a request: the task DAG, routing, forecast cost and critical path.",
    ),
    "setup": _entry(
        "setup",
        summary="Make sure of a Docker engine and the base image: as root, install and start them.",
    ),
    "advisories": _entry("advisories", summary="Offline vulnerability advisories."),
    "memory": _entry("heal", summary="What KARMA has learned about failures in this repository."),
    "ci": _entry("record", "humans", summary="KARMA inside GitHub Actions (used by action.yml)."),
    "runs": _entry(
        "runs",
        summary="The recorded runs: list them (default), prune old ones, export one.",
    ),
}
