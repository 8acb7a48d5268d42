"""One attempt's work judged and integrated: the agent's work checked in its sandbox, a
rerun or a quarantine applied as the healer decided, and a passing change committed and
merged onto the build branch (a conflict is a failure of the attempt like any other)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING

from karma.conversation import Brief
from karma.errors import WorkspaceError
from karma.executor.unit import OnStep, WorkEnd, WorkLimits, do_work, run_checks, staging_failure
from karma.failpoints import failpoint
from karma.footprint import Footprint
from karma.heal import Evidence
from karma.heal.remediation import quarantine_test, rerun_failed_tests, rerun_plan
from karma.heal.treatment import AttemptEnd, Recheck, Treatment
from karma.ids import TaskId
from karma.layout import Placed, in_folder
from karma.models.recorded import RecordingModel
from karma.plan import Task
from karma.sandbox.interface import Sandbox
from karma.trailers import commit_message, with_trailers

if TYPE_CHECKING:
    from karma.pipeline.build import Build
    from karma.workspace import Worktree


def failed_end(build: Build, evidence: Evidence, detail: str) -> AttemptEnd:
    return AttemptEnd("failed", evidence, build.healer.classify(evidence), detail=detail)


def staging_failed_end(build: Build, exc: WorkspaceError) -> AttemptEnd:
    detail, evidence = staging_failure(exc)
    return failed_end(build, evidence, detail)


def run_work(
    build: Build,
    task: Task,
    number: int,
    model_name: str,
    treatment: Treatment,
    worktree: Worktree,
    start: Callable[[], Sandbox],
    attempt_id: int,
    footprint: Footprint,
    placed: Placed,
) -> AttemptEnd:
    """The attempt's work in the sandbox `start` makes (the image of the stack `placed`,
    whose folder its checks run in), judged and integrated."""
    timeout = build.config.sandbox.exec_timeout_s * treatment.timeout_factor
    if treatment.recheck is not None:
        return _recheck(build, task, number, model_name, worktree, start(), treatment.recheck,
                        timeout, footprint, placed)  # fmt: skip
    model = RecordingModel(
        build.model_for(model_name, task.id, number), build.store, build.run_id, task.id, number
    )
    work = do_work(
        brief_of(build, task, number, treatment),
        model,
        start,
        worktree.path,
        stage=lambda: build.workspace.staged(worktree),
        stack=placed.stack,
        folder=placed.folder,
        config=build.config,
        limits=WorkLimits(timeout, treatment.remedy, select_tests=build.select_tests()),
        footprint=footprint,
        stop=build.stop,
        on_step=step_recorder(build, task.id, number),
    )
    finished = partial(_integrate, build, task, number, model_name, worktree, work.summary,
                       footprint)  # fmt: skip
    return judge(build, task, attempt_id, work, finished)


def judge(build: Build, task: Task, attempt_id: int, work: WorkEnd,
            finished: Callable[[], AttemptEnd]) -> AttemptEnd:  # fmt: skip
    """The attempt's end from how its work ended, wherever it ran: charged, classified,
    and, when the work finished, integrated by `finished`."""
    if work.status == "remedy_failed":
        assert work.evidence is not None
        return replace(failed_end(build, work.evidence, work.detail), remedy_failed=True)
    if work.ran_agent:
        build.charge(task.id, attempt_id, work.usage, work.cost_usd)
    if work.error is not None:
        build.interrupt()  # no task can succeed now: stop the build, keep it resumable
        raise work.error
    if work.status == "interrupted":
        return AttemptEnd("interrupted", detail=work.detail or "interrupted")
    if work.checked_ahead:
        build.record.log("the checks ran while the model thought; that run, on the tree "
                         "staged at finish, is their result", task.id)  # fmt: skip
    if work.status == "failed":
        assert work.evidence is not None
        return failed_end(build, work.evidence, work.detail)
    return finished()


def brief_of(build: Build, task: Task, number: int, treatment: Treatment) -> Brief:
    """What the first message of an attempt tells the model."""
    return Brief(
        task.id,
        task.title,
        task.description,
        build.request,
        number,
        plan_notes=build.plan_notes(task),
        context=build.context_text,
        hints=treatment.hints,
    )


def step_recorder(build: Build, task_id: TaskId, number: int) -> OnStep:
    """Each agent step into the run record (redacted) and onto the bus."""

    return partial(build.record.step, task_id, number)


def _recheck(
    build: Build,
    task: Task,
    number: int,
    model_name: str,
    worktree: Worktree,
    sandbox: Sandbox,
    recheck: Recheck,
    timeout: float,
    footprint: Footprint,
    placed: Placed,
) -> AttemptEnd:
    """The failed attempt's change again, without the model: its failed tests rerun
    (passing on a rerun marks them flaky), or quarantined and the checks run again."""
    if recheck.quarantine:
        plan = rerun_plan(recheck.output)
        # A test id is relative to the stack's folder, where the suite ran; the file is
        # opened beneath the worktree (confined, no symlink on the way) all the same.
        done = [quarantine_test(worktree.path, placed.outer(test), build.run_id)
                for test in (plan.test_ids if plan else ())]  # fmt: skip
        skipped = [q.test_id for q in done if q.applied]
        if not skipped:
            why = "; ".join(f"{q.test_id}: {q.reason}" for q in done if q.reason)
            return failed_end(build, Evidence.from_log(recheck.output, step="test"),
                              "no failed test could be quarantined" + (f" ({why})" if why
                                                                       else ""))  # fmt: skip
        build.record.log("quarantined as flaky, a human should look: " + ", ".join(skipped),
                         task.id)  # fmt: skip
        try:
            changed = build.workspace.changed_files(worktree)
        except WorkspaceError as exc:
            return staging_failed_end(build, exc)
        for step, outcome in run_checks(placed.stack, worktree.path, sandbox, changed, timeout,
                                        folder=placed.folder,
                                        workdir=build.config.sandbox.workdir):  # fmt: skip
            if not outcome.ok:
                return failed_end(build, Evidence.from_exec(outcome, step=step),
                                  f"{step} check failed after quarantine")  # fmt: skip
        return _integrate(
            build,
            task,
            number,
            model_name,
            worktree,
            "quarantined flaky test(s): " + ", ".join(skipped),
            footprint,
            carried=True,
        )
    rerun = rerun_failed_tests(sandbox, recheck.output, reruns=build.config.heal.reruns,
                               timeout_s=timeout, workdir=in_folder(
                                   build.config.sandbox.workdir, placed.folder))  # fmt: skip
    if rerun.flaky:
        tests = ", ".join(rerun.plan.test_ids if rerun.plan else ())
        return _integrate(build, task, number, model_name, worktree,
                          f"passed on rerun {rerun.passed_on}: flaky test(s) {tests}",
                          footprint, carried=True)  # fmt: skip
    if not rerun.runs:
        return failed_end(build, Evidence.from_log(recheck.output, step="test"),
                          "no failed tests to rerun were found")  # fmt: skip
    return failed_end(
        build, Evidence.from_exec(rerun.runs[-1], step="test"), "failed again on rerun"
    )


def _oversized(build: Build, footprint: Footprint) -> AttemptEnd | None:
    """A failed attempt when the worktree grew past its limit: checked before host git
    reads it (status, staging)."""
    excess = footprint.excess()
    if excess is None:
        return None
    return failed_end(
        build, Evidence.from_log(excess, step="agent", command="worktree size"), excess
    )


def _integrate(
    build: Build,
    task: Task,
    number: int,
    model_name: str,
    worktree: Worktree,
    summary: str,
    footprint: Footprint,
    *,
    carried: bool = False,
) -> AttemptEnd:
    """Commit and merge the attempt's change; `carried`: the change was committed by an
    earlier attempt whose branch this worktree continues."""
    if oversized := _oversized(build, footprint):  # the checks ran code too
        return oversized
    trailers = attempt_trailers(build.run_id, task.id, number, model_name)
    message = build.redact(commit_message(task.title, summary))
    try:
        commit = build.workspace.commit(worktree, message, trailers) or (
            worktree.base if carried else None
        )
    except WorkspaceError as exc:
        return staging_failed_end(build, exc)
    return merge_attempt(build, task, number, model_name, commit, summary)


def attempt_trailers(run_id: str, task_id: str, number: int, model_name: str) -> dict[str, str]:
    """The provenance trailers of an attempt's commit."""
    return {
        "Karma-Run": run_id,
        "Karma-Task": task_id,
        "Karma-Attempt": str(number),
        "Karma-Model": model_name,
    }


def merge_attempt(build: Build, task: Task, number: int, model_name: str, commit: str | None,
                  summary: str) -> AttemptEnd:  # fmt: skip
    """Merge the attempt's commit into the build branch (one commit per task)."""
    if commit is None:
        return AttemptEnd("succeeded", detail="nothing to change")
    failpoint("after_commit")
    message = build.redact(commit_message(task.title, summary))
    body = with_trailers(message, attempt_trailers(build.run_id, task.id, number, model_name))
    with build.merge_lock:
        try:
            merged = build.workspace.integrate(build.branch, commit, body, tip=build.tip())
            if merged.commit is not None:
                build.moved(merged.commit)
        except WorkspaceError as exc:
            return failed_end(
                build, Evidence.from_log(str(exc), step="build", command="git merge"), str(exc)
            )
    if merged.commit is None:
        files = ", ".join(merged.conflicts) or "unknown files"
        build.record.merge_conflict(task.id, list(merged.conflicts))
        evidence = Evidence.from_log(
            f"merge conflict with the build branch in {files}\n{merged.details}",
            step="build",
            command="git merge-tree",
        )
        return AttemptEnd(
            "conflict",
            evidence,
            build.healer.classify(evidence),
            detail=f"merge conflict with the build branch in {files}: "
            "redo the change on top of the build branch as it is now",
        )
    build.record.merged(task.id, merged.commit)
    return AttemptEnd("succeeded", commit=merged.commit, detail=summary)
