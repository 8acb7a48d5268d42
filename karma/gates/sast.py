"""The sast gate: semgrep with KARMA's own rules, only new findings block.

semgrep runs offline (`--metrics=off`, no registry rules) with `quality_gates/semgrep/`
(rules for Python, JavaScript/TypeScript and Go, a folder each) on the changed files
and, in the same run, on their base versions exported to a temporary folder. A head
finding whose (rule, path, matched code) also occurs at base is pre-existing: reported,
never blocking. This is what `--baseline-commit` does, but it also covers uncommitted
changes, which `--baseline-commit` ignores (it diffs commits only), and one semgrep
process scans both sides. Only regular files reached without a symlink are scanned
(semgrep skips symlinks it finds in a walk, but follows or rejects one named on its
command line).
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from karma.gates.change import changed_paths, export_base
from karma.gates.files import is_regular, read_beneath
from karma.gates.interface import (
    Finding,
    GateContext,
    GateResult,
    GateSettings,
    GateUnavailable,
    Severity,
    Status,
)
from karma.gates.suite import semgrep_rules_dir
from karma.gates.tool import run_tool

SCANNED = (".py", ".js", ".jsx", ".mjs", ".cjs", ".ts", ".tsx", ".mts", ".cts", ".go", ".rs")
"""The files KARMA's rules have a language for (`quality_gates/semgrep/<language>/`);
semgrep applies each rule to the files of its own `languages`."""
SEVERITY: dict[str, Severity] = {"ERROR": "error", "WARNING": "warning", "INFO": "note"}


def find_tool(configured: str, name: str) -> str:
    """The executable: the configured one, the one beside this Python, or on PATH."""
    if configured:
        found = shutil.which(configured)
        if found is None:
            raise GateUnavailable(f"{name} not found at {configured!r}", tip=f"install {name}")
        return found
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise GateUnavailable(f"{name} is not installed", tip=f"pip install {name}")
    return found


def rule_id(check_id: str) -> str:
    """A stable id whatever folder semgrep was run from (it prefixes the rule's path)."""
    return "karma." + check_id.rsplit(".", 1)[-1]


def _code(root: Path, result: dict[str, Any]) -> str:
    path = Path(result["path"])
    if path.is_absolute():  # a base file, exported by us
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
    else:
        data = read_beneath(root, path.as_posix())
        text = data.decode("utf-8", "replace") if data is not None else ""
    lines = text.splitlines()
    start, end = result["start"]["line"], result["end"]["line"]
    return " ".join(line.strip() for line in lines[start - 1 : end])


class SastGate:
    name = "sast"

    def run(self, ctx: GateContext, settings: GateSettings) -> GateResult:
        started = time.monotonic()
        semgrep = find_tool(str(settings.get("semgrep", "")), "semgrep")
        rules = Path(settings.get("rules") or semgrep_rules_dir(ctx.data))
        if not rules.is_dir():
            raise GateUnavailable(f"semgrep rules folder {rules} does not exist")
        # Regular files reached without a symlink only: semgrep would follow an explicit
        # symlink target (or abort the whole scan on it), reading a file outside the tree.
        paths = [p for p in changed_paths(ctx) if p.endswith(SCANNED) and is_regular(ctx.repo, p)]
        if not paths:
            return GateResult(
                self.name,
                "skipped",
                (),
                time.monotonic() - started,
                "no changed Python, JavaScript/TypeScript, Go or Rust files to scan",
            )
        block = {str(s).upper() for s in settings.get("block_severities", ["ERROR", "WARNING"])}
        workdir = Path(tempfile.mkdtemp(prefix="karma-sast-"))
        try:
            base_dir = workdir / "base"
            base_paths = export_base(ctx, paths, base_dir)
            command = [
                semgrep,
                "scan",
                *(["--experimental"] if settings.get("native", True) else []),
                "--config",
                str(rules),
                "--metrics=off",
                "--disable-version-check",
                "--quiet",
                "--no-git-ignore",
                "--json",
                f"--timeout={int(settings.timeout_s)}",
                *paths,
                *(str(base_dir / p) for p in base_paths),
            ]
            proc = run_tool("semgrep", command, cwd=ctx.repo, timeout_s=settings.timeout_s)
            try:
                report = json.loads(proc.stdout) if proc.returncode in (0, 1) else None
            except json.JSONDecodeError:
                report = None
            if not isinstance(report, dict):
                tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
                raise GateUnavailable(
                    f"semgrep failed (exit {proc.returncode}): {' '.join(tail)[:400]}"
                )
            findings = self._findings(ctx.repo, base_dir, report, block)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        errors = [e for e in report.get("errors", []) if e.get("level") == "error"]
        new_blocking = [f for f in findings if f.new and f.severity == "error"]
        status: Status = (
            "failed" if new_blocking else ("warning" if findings or errors else "passed")
        )
        old = sum(not f.new for f in findings)
        summary = (
            f"{len(paths)} file(s) scanned: {len(new_blocking)} new blocking finding(s), "
            f"{old} pre-existing"
        )
        if errors:
            summary += f", {len(errors)} semgrep error(s)"
        return GateResult(self.name, status, tuple(findings), time.monotonic() - started, summary)

    def _findings(
        self, repo: Path, base_dir: Path, report: dict[str, Any], block: set[str]
    ) -> list[Finding]:
        base_prefix = str(base_dir) + "/"
        seen_at_base: Counter[tuple[str, str, str]] = Counter()
        head: list[tuple[dict[str, Any], tuple[str, str, str]]] = []
        for result in report.get("results", []):
            path = str(result["path"])
            if path.startswith(base_prefix):
                rel = path[len(base_prefix) :]
                seen_at_base[(result["check_id"], rel, _code(repo, result))] += 1
            else:
                head.append((result, (result["check_id"], path, _code(repo, result))))
        findings = []
        for result, key in sorted(head, key=lambda item: (item[1][1], item[0]["start"]["line"])):
            new = seen_at_base[key] == 0
            if not new:
                seen_at_base[key] -= 1
            raw = str(result["extra"].get("severity", "WARNING")).upper()
            severity: Severity = "error" if raw in block else SEVERITY.get(raw, "warning")
            message = " ".join(str(result["extra"].get("message", "")).split())
            findings.append(
                Finding(
                    rule_id(result["check_id"]),
                    severity,
                    key[1],
                    int(result["start"]["line"]),
                    message,
                    new,
                )
            )
        return findings
