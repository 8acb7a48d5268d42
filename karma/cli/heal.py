"""`karma classify` and `karma memory`: the healing table and memory from the command line.

`classify` reads a log (a file, or `-` for stdin), keeps a bounded tail, and prints
how a failed attempt with that output would be classified; exit 0 (a query), 2 when
the input cannot be read. `memory` shows, exports, imports and reflects on what KARMA
has learned in this repository's run store.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from collections import deque
from pathlib import Path
from typing import Annotated, Any, BinaryIO

import typer

from karma.cli.app import app, err_console, out, state
from karma.errors import ExitCode, UsageError

memory_app = typer.Typer(help="What KARMA has learned about failures in this repository.")
app.add_typer(memory_app, name="memory")

READ_LIMIT = 4 * 1024 * 1024  # bytes of a log's tail read; the evidence keeps less


def _read_stream(stream: BinaryIO) -> bytes:
    # A window of chunks, not one growing bytes: a 1 GB stream costs one pass, O(n).
    chunks: deque[bytes] = deque()
    held = 0
    while chunk := stream.read(1 << 20):
        chunks.append(chunk)
        held += len(chunk)
        while held - len(chunks[0]) >= READ_LIMIT:
            held -= len(chunks.popleft())
    return b"".join(chunks)[-READ_LIMIT:]


def _read_tail(source: str) -> bytes:
    """The last `READ_LIMIT` bytes of a log: a file (its tail only), a pipe, or stdin (`-`).

    Trust: the log is untrusted bytes, decoded later with replacement. A device or a
    socket is refused (exit 2): `/dev/zero` has no end and no tail to seek to.
    """
    if source == "-":
        return _read_stream(sys.stdin.buffer)
    path = Path(source)
    try:
        with path.open("rb") as handle:
            mode = os.fstat(handle.fileno()).st_mode
            if stat.S_ISFIFO(mode):
                return _read_stream(handle)
            if not stat.S_ISREG(mode):
                raise UsageError(f"{path}: not a regular file or a pipe")
            size = os.fstat(handle.fileno()).st_size
            handle.seek(max(size - READ_LIMIT, 0))
            return handle.read(READ_LIMIT)
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror or exc}") from None


def _patterns() -> Any:
    from karma.home import DataRoots
    from karma.recipes import load_failure_patterns

    return load_failure_patterns(DataRoots.of_checkout(state.repo))


@app.command()
def classify(
    source: Annotated[str, typer.Argument(help="A log file, or - for stdin.")] = "-",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    step: Annotated[str, typer.Option(help="install|build|test|lint|typecheck|agent")] = "build",
    exit_code: Annotated[int, typer.Option("--exit-code", help="The command's exit code.")] = 1,
    tool: Annotated[str | None, typer.Option(help="The tool that wrote the log.")] = None,
    explain: Annotated[
        bool, typer.Option("--explain", help="Show who decided, the runner-up and the key lines.")
    ] = False,
) -> ExitCode:
    """Classify a failure log the way a failed attempt is classified."""
    from karma.heal import Evidence, Healer
    from karma.heal.remediation import tier_of

    if step not in ("install", "build", "test", "lint", "typecheck", "agent"):
        raise UsageError(f"unknown step {step!r}")
    config = state.config()
    healer = Healer(None, config, _patterns())
    evidence = Evidence.from_log(
        _read_tail(source), step=step, exit_code=exit_code, tool=tool,  # type: ignore[arg-type]
        tail_chars=config.heal.output_tail_chars,
    )  # fmt: skip
    result = healer.classify(evidence)
    pattern = healer.pattern(result)
    data = result.to_json()
    data["remediations"] = [
        {"name": r.name, "tier": tier_of(r.name), "prior": r.prior} for r in pattern.remediations
    ]
    if as_json:
        out.print_json(json.dumps(data))
        return ExitCode.OK
    runner = data["runner_up"]
    out.print(f"[bold]{data['class']}[/bold]  pattern {data['pattern']}  "
              f"confidence {data['confidence']:.2f}  signature {data['signature']}")  # fmt: skip
    if explain:
        _explain(healer, evidence, data, result.matched)
    if runner:
        out.print(f"runner-up: {runner['class']} ({runner['pattern']}, {runner['confidence']:.2f})")
    elif explain:
        out.print("runner-up: none (no pattern of another class matched)")
    if explain:
        out.print("key lines:")
    for line in data["key_lines"]:
        out.print(f"  | {line}", markup=False, highlight=False)
    out.print(
        "remediations: " + ", ".join(f"{r['name']} ({r['tier']})" for r in data["remediations"])
    )
    return ExitCode.OK


def _explain(
    healer: Any, evidence: Any, data: dict[str, Any], matched: tuple[tuple[str, str], ...]
) -> None:
    """Who decided and why: the sure pattern and its line, or the model and its threshold."""
    from karma.heal.flaky import signals
    from karma.heal.patterns import PATTERN_SURE

    decided = data["decided_by"]
    table = healer.table
    if data["precedence"]:
        known = table.precedence.rules if table.precedence else ()
        rules = {(r.cause, r.symptom): r for r in known}
        for step in data["precedence"]:
            rule = rules.get((step["cause"], step["symptom"]))
            why = rule.describe() if rule else f"{step['cause']} over {step['symptom']}"
            out.print(f"precedence: {why}", markup=False, highlight=False)
    if decided == "pattern":
        how = (f"pattern {data['pattern']}, confidence {data['confidence']:.2f} >= "
               f"{PATTERN_SURE:.2f} or learned here (sure: the model not asked)")  # fmt: skip
    elif decided == "model" and data["class"] == "unknown":
        how = ("learned model (patterns unsure or silent): none of the classes; confidence "
               "capped at the unknown pattern's, so no remedy tier trusts it")  # fmt: skip
    elif decided == "model":
        recipe = table.by_id.get(data["pattern"], table.fallback).id
        how = (f"learned model (patterns unsure or silent), p={data['confidence']:.2f} >= "
               f"threshold {table.model.threshold:.2f}; remedies of {recipe}")  # fmt: skip
    else:
        how = (f"unknown: the learned model's best guess is below its threshold "
               f"{table.model.threshold:.2f}")  # fmt: skip
    out.print(f"decided by: {how}", markup=False, highlight=False)
    ids = [pattern_id for _, pattern_id in matched]
    shown = ", ".join(ids[:6]) + (f" (+{len(ids) - 6})" if len(ids) > 6 else "")
    out.print(f"patterns matched: {shown or 'none'}", markup=False, highlight=False)
    out.print(f"evidence: step {evidence.step}, tool {evidence.tool or '-'}, {evidence.state}",
              markup=False, highlight=False)  # fmt: skip
    if data["flakiness"]:
        out.print(f"flakiness: {data['flakiness']:.2f} ({', '.join(signals(evidence))}); "
                  "the rerun remedy decides", markup=False, highlight=False)  # fmt: skip


def _store(*, create: bool = False) -> Any:
    """The run store; None when there is none yet (queries never create one)."""
    from karma.store import Store

    path = state.config().db_path(state.repo)
    if not create and not path.is_file():
        err_console.print(f"no healing memory yet ({path} does not exist)")
        return None
    return Store(path)


@memory_app.command("stats")
def memory_stats(
    runs: Annotated[int, typer.Option(help="Runs in the first-attempt trend.")] = 10,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> ExitCode:
    """Per class: seen, resolved, and each remediation's tries and success rate."""
    from karma.heal.memory import stats

    store = _store()
    if store is None:
        return ExitCode.OK
    data = stats(store, runs)
    if as_json:
        out.print_json(json.dumps(data))
        return ExitCode.OK
    for name, entry in data["classes"].items():
        out.print(f"[bold]{name}[/bold]: seen {entry['seen']} ({entry['signatures']} signatures),"
                  f" resolved {entry['resolved']}")  # fmt: skip
        for rem, r in entry["remediations"].items():
            out.print(f"  {rem:24} tries {r['tries']:4}  success {r['success_rate']:.0%}")
    trend = [t["first_attempt_success"] for t in data["first_attempt_trend"]]
    shown = " ".join("—" if t is None else f"{t:.0%}" for t in trend) or "no runs yet"
    out.print(f"first-attempt success, last {len(trend)} runs (oldest first): {shown}")
    return ExitCode.OK


@memory_app.command("show")
def memory_show(
    signature: Annotated[str, typer.Argument(help="A signature (or prefix).")],
) -> ExitCode:
    """One failure signature: its class, example lines, files and remediation outcomes."""
    from karma.heal.memory import show

    store = _store()
    data = None if store is None else show(store, signature)
    if data is None:
        err_console.print(f"no failure with signature {signature!r}")
        return ExitCode.FAILED
    out.print_json(json.dumps(data, default=str))
    return ExitCode.OK


@memory_app.command("export")
def memory_export(
    file: Annotated[Path, typer.Argument(help="Where to write (- for stdout).")],
) -> ExitCode:
    """Write the healing memory to one JSON file a team or a CI cache can carry."""
    from karma.heal.memory import export

    store = _store()
    if store is None:
        return ExitCode.FAILED
    text = json.dumps(export(store), indent=1, default=str)
    if str(file) == "-":
        sys.stdout.write(text + "\n")
    else:
        file.write_text(text + "\n", encoding="utf-8")
        err_console.print(f"wrote {file}")
    return ExitCode.OK


@memory_app.command("import")
def memory_import(
    file: Annotated[Path, typer.Argument(help="A file from `memory export`.")],
) -> ExitCode:
    """Merge an exported memory into this repository's."""
    from karma.heal.memory import import_file

    added = import_file(_store(create=True), file)
    out.print(f"imported {added['failures']} failures, {added['outcomes']} outcomes")
    return ExitCode.OK


@memory_app.command("reflect")
def memory_reflect(
    apply: Annotated[bool, typer.Option("--apply", help="Write the accepted patterns.")] = False,
    use_model: Annotated[bool, typer.Option("--model/--no-model", help="Ask the model.")] = True,
) -> ExitCode:
    """Propose patterns for recurring unknown failures; show the diff (--apply writes it)."""
    from karma.heal.reflect import learned_file, propose, render

    config = state.config()
    store = _store()
    if store is None:
        return ExitCode.OK
    model = None
    if use_model:
        from karma.models import get_model

        model = get_model(config.models.medium, config)
    proposals = propose(store, _patterns(), model=model)
    if not proposals:
        out.print("no recurring unknown failures to learn from")
        return ExitCode.OK
    for p in proposals:
        verdict = "accepted" if p.accepted else "rejected: " + "; ".join(p.problems)
        err_console.print(f"{p.pattern['id']} ({len(p.cluster.signatures)} signatures, "
                          f"seen {p.cluster.count}x): {verdict}")  # fmt: skip
    accepted = [p for p in proposals if p.accepted]
    if not accepted:
        return ExitCode.OK
    path = learned_file(state.repo)
    text, diff = render(path, accepted)
    out.print(diff, markup=False, highlight=False, end="")
    if apply:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        err_console.print(f"wrote {path}")
    else:
        err_console.print("dry run: --apply writes it")
    return ExitCode.OK
