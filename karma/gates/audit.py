"""The audit gate: pip-audit on the pinned dependencies, only new vulnerabilities block.

The dependency list is frozen (`name==version` lines) so pip-audit runs with
`--no-deps --disable-pip` and never resolves or installs anything on the host. It comes
from `python -I -m pip freeze` inside the sandbox (what the tests really ran with; `-I`
and an empty workspace, so a repository `pip/` cannot answer instead of pip) or, for
`karma gate` without a sandbox, from the pins in the repository's requirement files.
A sandbox environment with no packages at all is an error, never a skip: it means pip
did not really answer.
The base's pins (its requirement files at the base commit) are audited in the same
pip-audit run; a vulnerability the base already had is reported, not blocking.

An ignore list (`ignore = [{id, reason, expires}]`) silences a vulnerability until its
expiry date; an expired entry stops silencing and says so.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import json
import re
import shutil
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from karma.errors import ConfigError
from karma.gates.change import all_changed_paths, git
from karma.gates.files import is_regular, read_text_beneath
from karma.gates.interface import (
    Finding,
    GateContext,
    GateResult,
    GateSettings,
    GateUnavailable,
    Status,
)
from karma.gates.lockaudit import ROUTES, lock_audit
from karma.gates.npmaudit import npm_audit
from karma.gates.sast import find_tool
from karma.gates.tool import run_tool

PIN = re.compile(
    r"^\s*([A-Za-z0-9][A-Za-z0-9._\-]*)(?:\[[^\]]*\])?\s*==\s*([A-Za-z0-9.+!_\-]+)\s*(?:[;#].*)?$"
)


DEPENDENCY_FILES = (
    "pyproject.toml", "setup.py", "setup.cfg", "requirements*.txt", "requirements*.in",
    "constraints*.txt", "Pipfile", "Pipfile.lock", "poetry.lock", "uv.lock", "pdm.lock",
    "go.mod", "go.sum", "Cargo.toml", "Cargo.lock",
)  # fmt: skip
"""File names (at any depth) that can change what is installed, besides the audit's
`requirements` globs and the stack's `dependency_files`."""

FREEZE = "python -I -m pip freeze --exclude-editable"


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Pin:
    name: str
    version: str
    path: str = ""
    line: int = 0


@dataclass(frozen=True)
class Ignore:
    id: str
    reason: str
    expires: dt.date | None


def parse_pins(text: str, path: str = "") -> list[Pin]:
    pins = []
    for number, line in enumerate(text.splitlines(), 1):
        match = PIN.match(line)
        if match:
            pins.append(Pin(_norm(match.group(1)), match.group(2), path, number))
    return pins


def parse_ignores(entries: Iterable[Any]) -> list[Ignore]:
    ignores = []
    for entry in entries:
        if not isinstance(entry, Mapping) or not entry.get("id") or not entry.get("reason"):
            raise ConfigError(
                "gates.audit.ignore: each entry needs an id and a reason",
                tip='ignore = [{id = "PYSEC-2018-28", reason = "...", expires = 2026-12-31}]',
            )
        expires = entry.get("expires")
        if isinstance(expires, str):
            try:
                expires = dt.date.fromisoformat(expires)
            except ValueError:
                raise ConfigError(
                    f"gates.audit.ignore: {entry['id']}: expires is not a date"
                ) from None
        if isinstance(expires, dt.datetime):
            expires = expires.date()
        ignores.append(Ignore(str(entry["id"]), str(entry["reason"]), expires))
    return ignores


def _requirement_files(root_files: Iterable[str], globs: Iterable[str]) -> list[str]:
    globs = list(globs)
    return sorted(f for f in root_files if any(fnmatch.fnmatch(f, g) for g in globs))


def _linked(repo: Path, folder: str) -> bool:
    """Whether a step down to `folder` is a symlink or no directory (nothing is listed)."""
    current = repo
    for part in Path(folder).parts:
        current = current / part
        if current.is_symlink() or not current.is_dir():
            return True
    return False


class AuditGate:
    name = "audit"

    def run(self, ctx: GateContext, settings: GateSettings) -> GateResult:
        started = time.monotonic()
        globs = tuple(settings.get("requirements", ["requirements*.txt"]))
        if (untouched := self._no_dependency_change(ctx, globs, started)) is not None:
            return untouched
        if ctx.stack is not None and ctx.stack.installer == "npm":  # package-lock.json + OSV
            return npm_audit(ctx, settings, started, parse_ignores(settings.get("ignore", [])))
        if ctx.stack is not None and ctx.stack.name in ROUTES:  # go.sum / Cargo.lock + OSV
            return lock_audit(ctx, settings, started, parse_ignores(settings.get("ignore", [])))
        pip_audit = find_tool(str(settings.get("pip_audit", "")), "pip-audit")
        today = dt.date.today()
        ignores = parse_ignores(settings.get("ignore", []))
        source = str(settings.get("source", "auto"))
        if source == "auto":
            source = (
                "sandbox" if ctx.start_sandbox is not None and ctx.sandbox_image else "requirements"
            )
        # Never through a symlink: a `requirements.txt -> /proc/self/environ` is not read.
        top = ctx.repo / ctx.folder  # the stack's folder, in a mixed repository
        names = [] if _linked(ctx.repo, ctx.folder) else [p.name for p in top.iterdir()]
        head_files = [ctx.at_folder(name) for name in _requirement_files(
            (n for n in names if is_regular(ctx.repo, ctx.at_folder(n))), globs)]  # fmt: skip
        head = [
            pin for f in head_files for pin in parse_pins(read_text_beneath(ctx.repo, f) or "", f)
        ]
        if source == "sandbox":
            located = {(pin.name, pin.version): pin for pin in head}
            # An installed package no requirement file pins (a transitive one) is reported on
            # the first requirement file, so code scanning still has a file to show it on.
            anchor = head_files[0] if head_files else ""
            head = [
                located.get((pin.name, pin.version), Pin(pin.name, pin.version, anchor, 0))
                for pin in self._frozen(ctx, settings)
            ]
        tree = ctx.base if ctx.folder == "." else f"{ctx.base}:{ctx.folder}"
        listed = git(ctx, "ls-tree", "--name-only", tree, check=ctx.folder == ".").splitlines()
        base = [
            pin
            for f in map(ctx.at_folder, _requirement_files(listed, globs))
            for pin in parse_pins(git(ctx, "show", f"{ctx.base}:{f}"), f)
        ]
        if not head and source == "sandbox":
            raise GateUnavailable(
                "pip freeze in the sandbox listed no packages: the environment the tests ran "
                "in cannot be audited"
            )
        if not head:
            where = (
                "the sandbox's environment"
                if source == "sandbox"
                else "requirement files (name==version)"
            )
            return GateResult(
                self.name,
                "skipped",
                (),
                time.monotonic() - started,
                f"no pinned dependencies in {where}",
            )
        vulns = self._audit(ctx, settings, pip_audit, {(p.name, p.version) for p in head + base})
        at_base = {v for pin in base for v in vulns.get((pin.name, pin.version), {})}
        findings: list[Finding] = []
        ignored = 0
        expired_seen: set[str] = set()
        for pin in head:
            for vid, (aliases, fix, description) in vulns.get((pin.name, pin.version), {}).items():
                ids = {vid, *aliases}
                rule = next((i for i in ignores if i.id in ids), None)
                if rule is not None and (rule.expires is None or rule.expires >= today):
                    ignored += 1
                    continue
                if rule is not None and rule.id not in expired_seen:
                    expired_seen.add(rule.id)
                    findings.append(
                        Finding(
                            "audit.ignore-expired",
                            "warning",
                            "",
                            0,
                            f"ignore entry {rule.id} expired on {rule.expires} ({rule.reason})",
                        )
                    )
                new = vid not in at_base
                fixed = f"; fixed in {', '.join(fix)}" if fix else ""
                alias = f" ({', '.join(sorted(aliases))})" if aliases else ""
                findings.append(
                    Finding(
                        vid,
                        "error" if new else "warning",
                        pin.path,
                        pin.line,
                        f"{pin.name} {pin.version} is vulnerable: {vid}{alias}{fixed}. "
                        f"{description[:300]}",
                        new,
                    )
                )
        blocking = [f for f in findings if f.new and f.severity == "error"]
        status: Status = "failed" if blocking else ("warning" if findings else "passed")
        summary = (
            f"{len(head)} pinned package(s) from {source}: {len(blocking)} new vulnerability(ies), "
            f"{sum(not f.new for f in findings)} pre-existing, {ignored} ignored"
        )
        return GateResult(
            self.name,
            status,
            tuple(findings),
            time.monotonic() - started,
            summary,
            data={"source": source, "packages": len(head)},
        )

    def _no_dependency_change(
        self, ctx: GateContext, globs: tuple[str, ...], started: float
    ) -> GateResult | None:
        """A pass, with no query at all, when the change adds, edits or deletes no file that
        decides what is installed: the environment is then the base's, so any vulnerability
        in it is one the base already had, which never blocks."""
        names = (*DEPENDENCY_FILES, *globs, *(ctx.stack.dependency_files if ctx.stack else ()))
        for path in all_changed_paths(ctx):
            if not ctx.owns(path):  # another stack's (a mixed repository's): its own run
                continue
            base = path.rsplit("/", 1)[-1]
            if any(fnmatch.fnmatch(base, g) or fnmatch.fnmatch(path, g) for g in names):
                return None
            if "requirements" in path.split("/")[:-1]:  # requirements/dev.txt and the like
                return None
        return GateResult(
            self.name,
            "passed",
            (),
            time.monotonic() - started,
            "the change touches no dependency file: nothing new to audit (no query made)",
            data={"source": "diff", "packages": 0},
        )

    def _frozen(self, ctx: GateContext, settings: GateSettings) -> list[Pin]:
        from karma.sandbox import spec_from_config

        assert ctx.start_sandbox is not None and ctx.sandbox_image is not None
        # pip freeze reads the image's environment, not the tree: the sandbox gets an
        # empty workspace, so nothing of the tree is on sys.path or runs.
        with tempfile.TemporaryDirectory(prefix="karma-audit-ws-") as empty:
            spec = spec_from_config(
                ctx.config,
                image=ctx.sandbox_image,
                workspace=Path(empty),
                run_id=ctx.run_id,
                task_id="gate-audit",
            )
            box = ctx.start_sandbox(spec)
            try:
                result = box.exec(FREEZE, timeout_s=min(settings.timeout_s, 120))
            finally:
                box.close()
        if not result.ok:
            raise GateUnavailable(
                f"pip freeze in the sandbox failed (exit {result.exit_code}): "
                f"{result.output[-300:]}"
            )
        # The installer's own packages (pip, setuptools, wheel) are left out: the base is
        # compared by its requirement files, which never list them.
        return [Pin(pin.name, pin.version) for pin in parse_pins(result.output)]

    def _audit(
        self, ctx: GateContext, settings: GateSettings, pip_audit: str, pins: set[tuple[str, str]]
    ) -> dict[tuple[str, str], dict[str, tuple[list[str], list[str], str]]]:
        """{(name, version): {vuln id: (aliases, fix versions, description)}}

        pip-audit refuses a requirements file that names a package twice, so a package the
        change moves to another version (base and head pins) is audited in a second run."""
        found: dict[tuple[str, str], dict[str, tuple[list[str], list[str], str]]] = {}
        for batch in _distinct_names(pins):
            found.update(self._audit_once(ctx, settings, pip_audit, batch))
        return found

    def _audit_once(
        self, ctx: GateContext, settings: GateSettings, pip_audit: str, pins: set[tuple[str, str]]
    ) -> dict[tuple[str, str], dict[str, tuple[list[str], list[str], str]]]:
        workdir = Path(tempfile.mkdtemp(prefix="karma-audit-"))
        try:
            frozen = workdir / "frozen.txt"
            frozen.write_text("".join(f"{n}=={v}\n" for n, v in sorted(pins)), encoding="utf-8")
            out = workdir / "audit.json"
            command = [
                pip_audit,
                "-r",
                str(frozen),
                "--no-deps",
                "--disable-pip",
                "-f",
                "json",
                "-o",
                str(out),
                "--progress-spinner",
                "off",
                "--vulnerability-service",
                "osv",
                "--timeout",
                str(max(1, int(min(settings.timeout_s, 60)))),
            ]
            if ctx.config.gates.audit.osv_url:
                command += ["--osv-url", ctx.config.gates.audit.osv_url]
            proc = run_tool("pip-audit", command, cwd=workdir, timeout_s=settings.timeout_s)
            if proc.returncode not in (0, 1) or not out.is_file():
                tail = " ".join(proc.stderr.strip().splitlines()[-3:])
                raise GateUnavailable(f"pip-audit failed (exit {proc.returncode}): {tail[:400]}")
            report = json.loads(out.read_text(encoding="utf-8"))
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        found: dict[tuple[str, str], dict[str, tuple[list[str], list[str], str]]] = {}
        for dep in report.get("dependencies", []):
            key = (_norm(dep.get("name", "")), str(dep.get("version", "")))
            for vuln in dep.get("vulns", []):
                found.setdefault(key, {})[vuln["id"]] = (
                    list(vuln.get("aliases", [])),
                    list(vuln.get("fix_versions", [])),
                    str(vuln.get("description", "")),
                )
        return found


def _distinct_names(pins: set[tuple[str, str]]) -> list[set[tuple[str, str]]]:
    """`pins` in as few batches as possible, none naming a package twice."""
    batches: list[set[tuple[str, str]]] = []
    for name, version in sorted(pins):
        batch = next((b for b in batches if all(n != name for n, _ in b)), None)
        if batch is None:
            batch = set()
            batches.append(batch)
        batch.add((name, version))
    return batches
