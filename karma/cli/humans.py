"""`karma approve`, `karma reject`, `karma answer`: a human decides what a run waits for.

A decision is recorded first (who — `--by`, else the repository's `git config user.name`
— when, the note), as a store row and a `human_decided` event; then an approval or an
answer continues the run through the resume path (`karma.waiting` says what the
decision covers), and a rejection ends it `failed` with the note as its reason. Nothing
waiting, a wrong id, or a decision already taken: one line and exit 2.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from karma.cli.app import app, err_console, state
from karma.errors import ExitCode, UsageError

Note = Annotated[str, typer.Option("--note", help="Why (recorded with the decision).")]
By = Annotated[
    str | None, typer.Option("--by", help="Who decides (default: git config user.name).")
]
RunArg = Annotated[str, typer.Argument(help="The run (a unique prefix is enough).")]


def _decide(run_id: str, kind: str, task: str | None, decision: str, note: str,
            by: str | None) -> str:  # fmt: skip
    """Record the decision on the open record; the run's full id."""
    from karma.cli.build import _session
    from karma.events import iso, utcnow
    from karma.text.inert import inert_lines
    from karma.waiting import open_record, rejectable, resolve_run
    from karma.workspace import Workspace

    config = state.config()
    if not config.db_path(state.repo).exists():
        raise UsageError(f"no run store at {config.db_path(state.repo)}")
    who = by or Workspace(state.repo).user_name() or "unknown"
    with _session(config, ci=False) as (store, bus, _):
        run_id = resolve_run(store, run_id)
        if decision == "rejected":
            rows = rejectable(store, run_id, task)
        else:
            rows = [open_record(store, run_id, "approval" if kind == "approval" else
                                "escalation", task)]  # fmt: skip
        for row in rows:
            if not store.decide_pending(row.id, decision, who, note):
                raise UsageError(f"run {run_id}: this was decided already")
            bus.emit("human_decided", run_id, row.task_id, decision=decision, by=who,
                     note=note, waited_for=row.kind, pending=row.id)  # fmt: skip
        if decision == "rejected":
            from karma.report import write_run_report

            overrides = [f"{r.task_id}'s {json.loads(r.detail_json)['remediation']}"
                         for r in rows if r.kind == "notice"]  # fmt: skip
            what = f" (overrides {', '.join(overrides)})" if overrides else ""
            reason = f"rejected by {who}{what}" + (f": {note}" if note else "")
            store.update_run(run_id, status="failed", reason=reason, finished_at=iso(utcnow()))
            bus.emit("run_finished", run_id, status="failed", reason=reason, pending=[])
            write_run_report(store, run_id, state.repo / ".karma" / "reports")
            from karma.notify import notify_run_end

            notify_run_end(config.notify, store, bus, run_id)
    err_console.print(inert_lines(f"{decision}: run {run_id} by {who}"), markup=False)
    return run_id


def _continue(run_id: str, json_out: bool) -> ExitCode:
    from karma.cli.build import _run

    return _run("", ci=False, json_out=json_out, jobs=None, max_cost=None, plan_file=None,
                resume=run_id, gates=True)  # fmt: skip


@app.command("approve")
def approve_command(
    run_id: RunArg,
    task: Annotated[
        str | None, typer.Option("--task", help="An escalated task's proposed remedy.")
    ] = None,
    note: Note = "",
    by: By = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> ExitCode:
    """Approve what a run waits for, and continue it (the gates re-run on its head)."""
    kind = "escalation" if task else "approval"
    return _continue(_decide(run_id, kind, task, "approved", note, by), json_out)


@app.command("reject")
def reject_command(
    run_id: RunArg,
    task: Annotated[
        str | None, typer.Option("--task", help="Override only this task's elevated remedy.")
    ] = None,
    note: Note = "",
    by: By = None,
) -> ExitCode:
    """Reject what a run waits for, or override an elevated remedy it went on with: the
    run ends `failed`, the note as its reason."""
    _decide(run_id, "approval", task, "rejected", note, by)
    return ExitCode.OK


@app.command("answer")
def answer_command(
    run_id: RunArg,
    hint: Annotated[str, typer.Argument(help="What to try: the next attempt's treatment.")],
    task: Annotated[str, typer.Option("--task", help="The escalated task.")],
    by: By = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> ExitCode:
    """Answer an escalated task with a hint; it gets another round of attempts."""
    if not hint.strip():
        raise UsageError("the hint is empty", tip=f'karma answer {run_id} --task {task} "hint"')
    return _continue(_decide(run_id, "escalation", task, "answered", hint, by), json_out)


def _ci_app() -> typer.Typer:
    from karma.cli.record import ci_app

    return ci_app


@_ci_app().command("comment")
def ci_comment_command(
    run_id: Annotated[str, typer.Option("--run", help="The run the comment decides about.")],
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> ExitCode:
    """A `/karma approve|reject|answer` comment decides (examples/github/on-issue.yml).

    The comment reaches KARMA only through the environment: KARMA_COMMENT_BODY (its text,
    untrusted), KARMA_COMMENT_AUTHOR and KARMA_COMMENT_ASSOCIATION (GitHub's; only an
    OWNER, MEMBER or COLLABORATOR decides)."""
    import os

    from karma.handover import comment_author, parse_comment

    by = comment_author(os.environ.get("KARMA_COMMENT_AUTHOR", ""),
                        os.environ.get("KARMA_COMMENT_ASSOCIATION", ""))  # fmt: skip
    command = parse_comment(os.environ.get("KARMA_COMMENT_BODY", ""))
    if command is None:
        raise UsageError("the comment holds no decision",
                         tip="/karma approve [note], /karma reject [note], "
                         "/karma answer TASK what to try")  # fmt: skip
    if command.verb == "reject":
        _decide(run_id, "approval", None, "rejected", command.text, by)
        return ExitCode.OK
    if command.verb == "approve":
        return _continue(_decide(run_id, "approval", None, "approved", command.text, by), json_out)
    decided = _decide(run_id, "escalation", command.task, "answered", command.text, by)
    return _continue(decided, json_out)
