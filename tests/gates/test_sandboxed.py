"""The tests and audit gates through the sandbox seam.

`HostSandbox` is a fake: a real class with canned behaviour that runs commands on the
host in the workspace, with a private folder standing in for the sandbox's /tmp. The
same gates against the real Docker backend are in the `docker`-marked test below.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

import pytest

from karma.advisories import AdvisoryServer
from karma.config import KarmaConfig
from karma.gates import GateContext, load_suite, run_suite
from karma.recipes import detect_stack
from karma.sandbox.interface import ExecResult, SandboxError, SandboxSpec
from tests.gates.conftest import git, make_repo, write


class HostSandbox:
    started: ClassVar[list[HostSandbox]] = []

    def __init__(self, spec: SandboxSpec, canned: Mapping[str, str] | None = None) -> None:
        self.spec, self.id, self.image = spec, f"fake-{len(self.started)}", spec.image
        self.tmp = Path(tempfile.mkdtemp(prefix="fake-sandbox-"))
        self.canned = dict(canned or {})
        self.closed = False
        self.started.append(self)

    def exec(self, command: str, *, timeout_s: float, workdir: str | None = None) -> ExecResult:
        for prefix, output in self.canned.items():
            if command.startswith(prefix):
                return ExecResult(command, 0, output, 0.0)
        local = (
            command.replace("/tmp/", f"{self.tmp}/")
            .replace(self.spec.workdir, str(self.spec.workspace))
            .replace("python ", f"{sys.executable} ", 1)
        )
        try:
            proc = subprocess.run(
                local,
                shell=True,
                cwd=self.spec.workspace,
                capture_output=True,
                text=True,
                timeout=timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return ExecResult(command, -9, "", timeout_s, limit="timeout")
        return ExecResult(command, proc.returncode, proc.stdout + proc.stderr, 0.0)

    def copy_in(self, src: Path, dest: str) -> None:
        if src.is_dir():
            shutil.copytree(src, self.tmp / Path(dest).name)
        else:
            shutil.copy(src, self.tmp / Path(dest).name)

    def copy_out(self, src: str, dest: Path) -> None:
        source = self.tmp / Path(src).name
        if not source.is_file():
            raise SandboxError(f"{src}: no such file in the sandbox")
        shutil.copy(source, dest)

    def close(self) -> None:
        self.closed = True
        shutil.rmtree(self.tmp, ignore_errors=True)


def test_tests_gate_runs_the_stack_command_in_the_sandbox(tmp_path: Path) -> None:
    HostSandbox.started.clear()
    passing = "def test_a():\n    assert 1\n\n\ndef test_b():\n    assert 1\n"
    repo = make_repo(tmp_path / "r", {"requirements.txt": "", "test_x.py": passing})
    write(repo, {"test_x.py": passing + "\n\ndef test_c():\n    assert 0, 'boom'\n"})
    ctx = GateContext(
        repo=repo,
        base=git(repo, "rev-parse", "HEAD"),
        config=KarmaConfig(),
        stack=detect_stack(repo),
        start_sandbox=HostSandbox,
        sandbox_image="karma/python:test",
    )
    gate = run_suite(ctx, load_suite().only(("tests",))).result("tests")
    assert gate is not None and gate.status == "failed", gate
    assert (
        gate.data["where"] == "sandbox" and gate.data["tests"] == 3 and gate.data["base_tests"] == 2
    )
    assert [(f.rule, f.path) for f in gate.findings] == [("tests.failure", "test_x.py")]
    assert "boom" in gate.findings[0].message
    assert len(HostSandbox.started) == 2 and all(box.closed for box in HostSandbox.started)
    assert {box.spec.task_id for box in HostSandbox.started} == {"gate-tests"}
    # Each run got a throwaway copy, never the tree under check or the base checkout.
    assert all(box.spec.workspace.name == "tree" for box in HostSandbox.started)
    assert all(not box.spec.workspace.exists() for box in HostSandbox.started)


def test_audit_reads_the_sandbox_environment(tmp_path: Path, osv: AdvisoryServer) -> None:
    repo = make_repo(tmp_path / "r", {"requirements.txt": "requests\n"})
    write(repo, {"app.py": "import requests\n", "requirements.txt": "requests\nidna\n"})

    def start(spec: SandboxSpec) -> HostSandbox:
        return HostSandbox(spec, {"python -I -m pip freeze": "requests==2.19.0\nidna==2.7\n"})

    config = KarmaConfig.model_validate({"gates": {"audit": {"osv_url": osv.url}}})
    ctx = GateContext(
        repo=repo,
        base=git(repo, "rev-parse", "HEAD"),
        config=config,
        start_sandbox=start,
        sandbox_image="karma/python:test",
    )
    gate = run_suite(ctx, load_suite().only(("audit",))).result("audit")
    assert gate is not None and gate.status == "failed" and gate.data["source"] == "sandbox"
    assert {"PYSEC-2018-28", "PYSEC-2023-74"} <= {f.rule for f in gate.findings}


def test_audit_of_an_empty_sandbox_environment_is_an_error(tmp_path: Path) -> None:
    """A `pip/` in the tree once made pip freeze print nothing, and audit then skipped."""
    repo = make_repo(tmp_path / "r", {"requirements.txt": "requests==2.19.0\n"})
    # A dependency change, so that the diff-aware audit has something to audit.
    write(repo, {"pip/__init__.py": "", "pip/__main__.py": "print()\n",
                 "requirements.txt": "requests==2.19.0\nidna==2.7\n"})  # fmt: skip

    def start(spec: SandboxSpec) -> HostSandbox:
        assert not any(spec.workspace.iterdir())  # pip freeze gets no tree to import from
        return HostSandbox(spec, {"python -I -m pip freeze": ""})

    ctx = GateContext(
        repo=repo,
        base=git(repo, "rev-parse", "HEAD"),
        config=KarmaConfig(),
        start_sandbox=start,
        sandbox_image="karma/python:test",
    )
    gate = run_suite(ctx, load_suite().only(("audit",))).result("audit")
    assert gate is not None and gate.status == "error", gate
    assert "listed no packages" in gate.summary


@pytest.mark.docker
def test_gates_in_the_real_docker_sandbox(tmp_path: Path, osv: AdvisoryServer) -> None:
    from karma.sandbox import get_sandbox
    from karma.sandbox.images import ensure_image

    passing = "def test_a():\n    assert 1\n"
    repo = make_repo(tmp_path / "r", {"requirements.txt": "", "test_x.py": passing})
    failing = passing + "\n\ndef test_b():\n    assert 0, 'boom'\n"
    write(repo, {"test_x.py": failing, "requirements.txt": "# nothing pinned yet\n"})
    config = KarmaConfig.model_validate(
        {
            "sandbox": {"base_image": "karma/base:bookworm"},
            "gates": {"audit": {"osv_url": osv.url}},
        }
    )
    backend = get_sandbox(config)
    image = ensure_image("python", repo, config)
    ctx = GateContext(
        repo=repo,
        base=git(repo, "rev-parse", "HEAD"),
        config=config,
        stack=detect_stack(repo),
        start_sandbox=backend.start,
        sandbox_image=image,
        run_id="gates-test",
    )
    result = run_suite(ctx, load_suite().only(("tests", "audit")))
    tests, audit = result.result("tests"), result.result("audit")
    assert tests is not None and tests.status == "failed", tests
    assert (
        tests.data["where"] == "sandbox"
        and tests.data["tests"] == 2
        and tests.data["base_tests"] == 1
    )
    assert [f.rule for f in tests.findings] == ["tests.failure"] and "boom" in tests.findings[
        0
    ].message
    assert audit is not None and audit.status in ("passed", "warning"), audit
    assert audit.data["source"] == "sandbox" and audit.data["packages"] >= 1
