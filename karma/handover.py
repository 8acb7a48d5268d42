"""A waiting run decided elsewhere: its exported record brought in, a decision in a comment.

On a CI runner nothing of a run survives the job but what the workflow keeps: a redacted
`karma runs export` and the build branch. `import_record` brings such an export into a
store so `karma approve|reject|answer` can continue the run there, and `parse_comment` /
`comment_author` read a `/karma ...` comment (examples/github/on-issue.yml) as a decision.
Both take untrusted input; what they return is what `karma.waiting` decides on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from karma.errors import UsageError
from karma.ids import RunId

if TYPE_CHECKING:
    from karma.store import Store

RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,79}")
_COMMIT = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


def import_record(store: Store, data: Any, repo: Path) -> str:
    """Add a `karma runs export` file's run to `store`, to continue it here; its id.

    Trust: untrusted. The file travelled (a CI artifact) and anyone who could replace it
    chooses every value, so only the shape of an export is accepted: a run id fit for a
    branch name, the run's own tables and columns, scalar values, the build branch
    `karma/<run>` and a commit id as its base. The run's repository becomes this one; its
    process and report are forgotten. Decisions taken before the export are kept as
    history (`superseded`, the note saying what they were) and never count again: what
    still waits needs a decision here."""
    if not isinstance(data, dict) or data.get("format") != "karma-run/1":
        raise UsageError("not a run record (expected format karma-run/1)",
                         tip="make one with `karma runs export RUN -o FILE`")  # fmt: skip
    run_id, tables = data.get("run_id"), data.get("tables")
    if not isinstance(run_id, str) or not RUN_ID.fullmatch(run_id):
        raise UsageError("the record's run_id is not a run id")
    run_id = RunId(run_id)
    if store.run(run_id) is not None:
        raise UsageError(f"run {run_id} is in {store.path} already", tip=f"karma show {run_id}")
    if not isinstance(tables, dict) or not all(
        isinstance(rows, list)
        and all(isinstance(r, dict) and all(_scalar(v) for v in r.values()) for r in rows)
        for rows in tables.values()
    ):
        raise UsageError("the record's tables are not lists of rows of plain values")
    runs = tables.get("runs") or []
    if len(runs) != 1:
        raise UsageError("the record must hold exactly one run")
    run = dict(runs[0])
    if run.get("branch") != f"karma/{run_id}":
        raise UsageError(f"the record's branch must be karma/{run_id}")
    if not isinstance(run.get("base_commit"), str) or not _COMMIT.fullmatch(run["base_commit"]):
        raise UsageError("the record's base_commit is not a commit id")
    run.update(repo=str(repo), pid=None, report_path=None)
    pending = []
    for row in tables.get("pending") or []:
        row = dict(row)
        if row.get("decision") not in (None, "superseded"):
            was = f"{row['decision']} by {row.get('decided_by')} before the import"
            row.update(decision="superseded", note=f"{was}: {row.get('note') or ''}".rstrip(": "))
        pending.append(row)
    store.import_run(run_id, {**tables, "runs": [run], "pending": pending})
    return run_id


def _scalar(value: object) -> bool:
    return value is None or isinstance(value, (str, int, float))


ALLOWED_ASSOCIATIONS = frozenset({"OWNER", "MEMBER", "COLLABORATOR"})
_COMMAND = re.compile(r"/karma[ \t]+(approve|reject|answer)(?![\w-])[ \t]*(.*)", re.DOTALL)
_LOGIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})(?:\[bot\])?")


@dataclass(frozen=True)
class CommentCommand:
    """A decision written as a comment: `/karma approve|reject [note]`, `/karma answer
    TASK hint`."""

    verb: Literal["approve", "reject", "answer"]
    text: str
    """The note, or the hint."""
    task: str | None = None


def parse_comment(body: str) -> CommentCommand | None:
    """The decision in a comment's text; None when it holds none (or a malformed one).

    Trust: untrusted (anyone's text; the workflow passes it through the environment,
    never a script). It is matched as data: the verb is one of three, the task an id of
    the plan's form, the note or hint only text that is recorded (redacted) and inert."""
    from karma.trailers import TASK_ID

    found = _COMMAND.match(body.replace("\r\n", "\n").strip())
    if found is None:
        return None
    verb, rest = found.group(1), found.group(2).strip()
    if verb != "answer":
        return CommentCommand("approve" if verb == "approve" else "reject", rest[:2000])
    task, hint = [*re.split(r"\s+", rest, maxsplit=1), ""][:2]
    if not TASK_ID.fullmatch(task) or not hint.strip():
        return None
    return CommentCommand("answer", hint.strip()[:4000], task)


def comment_author(login: str, association: str) -> str:
    """Who decides through a comment, or a UsageError when they may not.

    Trust: both come from GitHub's event (`comment.user.login`,
    `comment.author_association`); the association is checked again here, whatever the
    workflow's own guard says, and the login must look like one."""
    if association not in ALLOWED_ASSOCIATIONS:
        raise UsageError(f"a comment by a {association or 'stranger'} decides nothing: only "
                         "owners, members and collaborators decide")  # fmt: skip
    if not _LOGIN.fullmatch(login):
        raise UsageError("the comment's author is not a GitHub login")
    return f"{login} (GitHub)"
