"""`karma why`: from a line (or a commit) back to the request that caused it.

A line is blamed to its commit (git CLI); a KARMA commit carries trailers (`Karma-Run`,
`Karma-Task`, `Karma-Attempt`, `Karma-Model`) that lead into the run record: the task
and its plan entry, the attempt and the model, the exchange that wrote the file (prompt
and reply excerpts from `model_calls`), the failed attempts before it with their failure
classes and remediations, and the run's request. Text from the record is redacted and
made inert before it is shown.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from karma.errors import UsageError, WorkspaceError
from karma.hostgit import HostGit, open_repo
from karma.ids import RunId, TaskId
from karma.store import AttemptRow, ModelCallRow, Store
from karma.text.inert import plain
from karma.trailers import parse_trailers


@dataclass(frozen=True)
class Provenance:
    commit: str
    subject: str
    author: str
    trailers: dict[str, str]
    path: str | None = None
    line: int | None = None
    line_text: str | None = None
    request: str | None = None
    run_status: str | None = None
    task: dict[str, Any] | None = None
    attempt: dict[str, Any] | None = None
    prior_attempts: list[dict[str, Any]] = field(default_factory=list)
    prompt_excerpt: str | None = None
    reply_excerpt: str | None = None
    remediations: list[dict[str, Any]] = field(default_factory=list)

    @property
    def by_karma(self) -> bool:
        return "Karma-Run" in self.trailers

    def to_json(self) -> dict[str, Any]:
        return {
            "commit": self.commit,
            "subject": plain(self.subject),
            "author": self.author,
            "by_karma": self.by_karma,
            "path": self.path,
            "line": self.line,
            "line_text": None if self.line_text is None else plain(self.line_text, 500),
            "run_id": self.trailers.get("Karma-Run"),
            "task_id": self.trailers.get("Karma-Task"),
            "attempt": self.trailers.get("Karma-Attempt"),
            "model": self.model,
            "request": None if self.request is None else plain(self.request, 4000),
            "run_status": self.run_status,
            "task": self.task,
            "attempt_record": self.attempt,
            "prior_attempts": self.prior_attempts,
            "prompt_excerpt": self.prompt_excerpt,
            "reply_excerpt": self.reply_excerpt,
            "remediations": self.remediations,
        }

    @property
    def model(self) -> str | None:
        if self.attempt and self.attempt.get("model"):
            return str(self.attempt["model"])
        return self.trailers.get("Karma-Model")


@functools.cache
def _repo(repo: Path) -> HostGit:
    """The user's repository, discovered once (`karma why` reads only committed history)."""
    return open_repo(repo)


def _git(repo: Path, *args: str) -> str:
    try:
        return _repo(repo.resolve()).run(*args, timeout=60, strip=False)
    except WorkspaceError as exc:
        raise UsageError(str(exc)) from None


def parse_target(target: str, repo: Path) -> tuple[str, int | None] | None:
    """(path, line) when `target` names a file (`path` or `path:line`), else None."""
    path, sep, line = target.rpartition(":")
    if sep and line.isdigit() and path:
        return path, int(line)
    if (repo / target).exists() or "/" in target or ("." in target and not _looks_sha(target)):
        return target, None
    return None


def _looks_sha(text: str) -> bool:
    return re.fullmatch(r"[0-9a-fA-F]{4,40}", text) is not None


def blame(repo: Path, path: str, line: int, rev: str) -> tuple[str, str]:
    """(commit, text) of one line of `path` at `rev`."""
    out = _git(repo, "blame", "--porcelain", "-L", f"{line},{line}", rev, "--", path)
    first = out.splitlines()[0] if out else ""
    text = next((ln[1:] for ln in out.splitlines() if ln.startswith("\t")), "")
    return first.split(" ")[0], text


def last_commit(repo: Path, path: str, rev: str) -> str:
    sha = _git(repo, "log", "-1", "--format=%H", rev, "--", path).strip()
    if not sha:
        raise UsageError(f"{path}: no commit touches it at {rev}")
    return sha


def commit_info(repo: Path, commit: str) -> tuple[str, str, str, dict[str, str]]:
    sha = _git(repo, "rev-parse", "--verify", "--quiet", f"{commit}^{{commit}}").strip()
    out = _git(repo, "show", "-s", "--format=%H%x1f%s%x1f%an <%ae>%x1f%(trailers:only,unfold)", sha)
    full, subject, author, body = ([*out.split("\x1f"), "", "", ""])[:4]
    return full.strip(), subject, author, parse_trailers(body)


def why(target: str, *, repo: Path, store: Store | None, rev: str | None = None) -> Provenance:
    """The provenance of `path[:line]` (at `rev`, default HEAD) or of a commit."""
    file_target = parse_target(target, repo)
    path = line = line_text = None
    if file_target is not None:
        path, line = file_target
        where = rev or _rev_with(repo, path, store)
        if line is not None:
            commit, line_text = blame(repo, path, line, where)
        else:
            commit = last_commit(repo, path, where)
    else:
        commit = target
    try:
        sha, subject, author, trailers = commit_info(repo, commit)
    except UsageError:
        raise UsageError(
            f"{target}: neither a file in {repo} nor a commit",
            tip="karma why path/to/file.py:42, or karma why <commit>",
        ) from None
    prov = Provenance(sha, subject, author, trailers, path, line, line_text)
    if store is None or "Karma-Run" not in trailers:
        return prov
    return _from_record(prov, store)


def _rev_with(repo: Path, path: str, store: Store | None) -> str:
    """HEAD if it has the file, else the newest run's build branch that has it."""
    has = _repo(repo.resolve()).ok("cat-file", "-e", f"HEAD:{path}")
    if has or store is None:
        return "HEAD"
    for run in store.runs(limit=20):
        branch = run.branch
        if branch and _repo(repo.resolve()).ok("cat-file", "-e", f"{branch}:{path}"):
            return str(branch)
    return "HEAD"


def _from_record(prov: Provenance, store: Store) -> Provenance:
    run_id = RunId(prov.trailers["Karma-Run"])
    named = prov.trailers.get("Karma-Task")
    task_id = TaskId(named) if named else None
    run = store.run(run_id)
    if run is None:
        return prov
    plan_task: dict[str, Any] = {}
    if run.plan_json:
        plan = json.loads(run.plan_json)
        plan_task = next((t for t in plan.get("tasks", []) if t.get("id") == task_id), {})
    task_row = next((t for t in store.tasks(run_id) if t.id == task_id), None)
    task = None
    if task_row is not None or plan_task:
        task = {
            "id": named,
            "title": plain(task_row.title if task_row else plan_task.get("title", ""), 200),
            "description": plain(plan_task.get("description", ""), 1000),
            "kind": task_row.kind if task_row else plan_task.get("kind"),
            "deps": plan_task.get("deps", []),
            "files": plan_task.get("files", []),
            "tier": (task_row.tier if task_row else None) or plan_task.get("tier"),
        }
    attempts = store.attempts(run_id, task_id) if task_id else []
    number = int(prov.trailers.get("Karma-Attempt", "0") or 0)
    this = next((a for a in attempts if a.number == number), None)
    prior = [_attempt(a) for a in attempts if a.number < number]
    prompt, reply = _exchange(
        store.model_calls(run_id, task_id) if task_id else [], number, prov.path
    )
    remediations = [
        {
            "pattern_id": o["pattern_id"],
            "failure_class": o["failure_class"],
            "remediation": o["remediation"],
            "outcome": o["outcome"],
        }
        for o in store.outcomes_of(run_id, task_id)
    ]
    if not remediations:
        remediations = [
            {
                "pattern_id": a["pattern_id"],
                "failure_class": a["failure_class"],
                "remediation": a["remediation"],
                "outcome": "retried",
            }
            for a in prior
            if a["failure_class"]
        ]
    return Provenance(
        prov.commit,
        prov.subject,
        prov.author,
        prov.trailers,
        prov.path,
        prov.line,
        prov.line_text,
        request=run.request,
        run_status=run.status,
        task=task,
        attempt=_attempt(this) if this else None,
        prior_attempts=prior,
        prompt_excerpt=prompt,
        reply_excerpt=reply,
        remediations=remediations,
    )


def _attempt(row: AttemptRow) -> dict[str, Any]:
    return {
        "number": row.number,
        "status": row.status,
        "model": row.model,
        "tier": row.tier,
        "failure_class": row.failure_class,
        "pattern_id": row.pattern_id,
        "remediation": row.remediation,
        "summary": plain(row.summary or "", 400),
        "started_at": row.started_at,
        "finished_at": row.finished_at,
    }


def _exchange(
    calls: list[ModelCallRow], attempt: int, path: str | None
) -> tuple[str | None, str | None]:
    """The prompt of the attempt, and the reply that wrote `path` (else the last reply)."""
    mine = [c for c in calls if c.attempt == attempt] or calls
    if not mine:
        return None, None
    prompt = None
    try:
        request = json.loads(mine[0].request_json)
        users = [m.get("text", "") for m in request.get("messages", []) if m.get("role") == "user"]
        prompt = plain(users[0] if users and users[0] else request.get("system", ""), 1200)
    except (json.JSONDecodeError, AttributeError):
        prompt = None
    chosen = None
    for call in reversed(mine):
        if not call.reply_json:
            continue
        reply = json.loads(call.reply_json)
        wrote = any(
            path and path in json.dumps(tc.get("arguments", {}))
            for tc in reply.get("tool_calls", [])
        )
        if chosen is None or wrote:
            chosen = reply
        if wrote:
            break
    if chosen is None:
        return prompt, None
    parts = [chosen.get("text") or ""]
    for tc in chosen.get("tool_calls", []):
        args = json.dumps(tc.get("arguments", {}), ensure_ascii=False)
        parts.append(f"[tool {tc.get('name')}] {args}")
    return prompt, plain("\n".join(p for p in parts if p), 1200)


def render_text(prov: Provenance) -> str:
    """The terminal answer to "why did KARMA write this?" (already inert text)."""
    lines = []
    if prov.path:
        where = f"{prov.path}:{prov.line}" if prov.line else prov.path
        lines.append(f"{where}  {plain(prov.line_text or '', 200).strip()}")
    lines.append(f"commit  {prov.commit[:12]}  {plain(prov.subject, 120)}  ({prov.author})")
    if not prov.by_karma:
        lines.append("not written by KARMA (no Karma-Run trailer)")
        return "\n".join(lines)
    t = prov.task or {}
    lines += [
        f"run     {prov.trailers.get('Karma-Run')}  ({prov.run_status or 'not in this store'})",
        f"task    {prov.trailers.get('Karma-Task')}  {t.get('title', '')}",
        f"attempt {prov.trailers.get('Karma-Attempt')}  model {prov.model}  tier {t.get('tier')}",
    ]
    if t.get("description"):
        lines.append(f"plan    {t['description']}")
    if t.get("deps"):
        lines.append(f"after   {', '.join(map(str, t['deps']))}")
    if prov.request:
        lines.append(f"request {plain(prov.request, 400)}")
    for a in prov.prior_attempts:
        lines.append(
            f"earlier attempt {a['number']}: {a['status']} on {a['model']}, class "
            f"{a['failure_class'] or '-'}, remediation {a['remediation'] or '-'}"
        )
    for r in prov.remediations:
        lines.append(f"remediation {r['remediation']} for {r['failure_class']}: {r['outcome']}")
    if prov.prompt_excerpt:
        lines += ["prompt  (excerpt)", _indent(prov.prompt_excerpt)]
    if prov.reply_excerpt:
        lines += ["reply   (excerpt)", _indent(prov.reply_excerpt)]
    return "\n".join(lines)


def _indent(text: str) -> str:
    return "\n".join("    " + ln for ln in text.splitlines()[:20])
