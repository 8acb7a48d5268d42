"""Regenerate the golden failure corpus by running the real tools on broken fixtures.

    .venv/bin/python tests/golden/failures/generate.py [--only NAME ...] [--no-build]

Builds the "toolbox" image (toolbox.Dockerfile: the sandbox base plus mypy, pyright,
ruff, flake8, pytest, pip, poetry, uv, tsc, eslint, jest, npm, gcc, go, rustc, cargo) with
the host's network, then runs every case below in a fresh container with *no* network
(the network and resolver cases fail for real: a closed loopback port, no DNS, no
index), with the case's memory, disk and time limits. Each case writes
`<class>/<name>.log` (the tool's real output, tail-bounded) and `<class>/<name>.json`
(the expected class, the tool, the step, the command, the exit code and the limit that
stopped it). `tests/heal/test_golden.py` classifies every log; it needs no Docker.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
FIXTURES = HERE / "fixtures"
IMAGE = "karma/heal-toolbox:1"
MAX_LOG = 12_000


@dataclass(frozen=True)
class Case:
    klass: str
    name: str
    tool: str
    step: str
    command: str
    fixture: str | None = None
    memory_mb: int = 512
    timeout_s: float = 120.0
    user: str = "0:0"
    small_disk: bool = False
    read_only: bool = False


C = Case
CASES: tuple[Case, ...] = (
    # -- type errors --------------------------------------------------------------------
    C("type_error", "mypy_incompatible", "mypy", "typecheck", "mypy --no-color-output app.py", "py_type"),
    C("type_error", "pyright_assign", "pyright", "typecheck", "pyright app.py", "py_type"),
    C("type_error", "tsc_assign", "tsc", "typecheck", "tsc -p . --pretty false", "js_type"),
    C("type_error", "rustc_mismatched", "rustc", "build", "rustc main.rs", "rust_type"),
    C("type_error", "go_cannot_use", "go", "build", "go build ./...", "go_type"),
    C("type_error", "python_runtime_typeerror", "python", "test", "python3 -c 'len(5)'"),
    # -- syntax errors ------------------------------------------------------------------
    C("syntax_error", "python_py_compile", "python", "build", "python3 -m py_compile app.py", "py_syntax"),
    C("syntax_error", "pytest_collect_syntax", "pytest", "test", "pytest -q -p no:cacheprovider", "py_syntax"),
    C("syntax_error", "node_unexpected_token", "node", "test", "node app.js", "js_syntax"),
    C("syntax_error", "tsc_expected", "tsc", "typecheck", "tsc --noEmit --pretty false app.ts", "js_syntax"),
    C("syntax_error", "ruff_parse", "ruff", "lint", "ruff check --no-cache app.py", "py_syntax"),
    # -- import errors ------------------------------------------------------------------
    C("import_error", "python_module_not_found", "python", "test", "python3 app.py", "py_import"),
    C("import_error", "pytest_collect_import", "pytest", "test", "pytest -q -p no:cacheprovider test_local.py", "py_import"),
    C("import_error", "mypy_missing_stub", "mypy", "typecheck", "mypy --no-color-output app.py", "py_import"),
    C("import_error", "node_cannot_find_module", "node", "test", "node app.js", "js_import"),
    C("import_error", "tsc_cannot_find_module", "tsc", "typecheck", "tsc -p . --pretty false", "js_import"),
    C("import_error", "go_missing_module", "go", "build", "go build ./...", "go_import"),
    # a required module not vendored, with the Go stack's settings (GOPROXY=off, no -mod=mod)
    C("import_error", "go_require_not_vendored", "go", "build", "GOFLAGS= go build ./...", "go_require"),
    C("import_error", "go_stack_modules_check", "sh", "install", "__stack__ go modules", "go_require"),
    C("import_error", "cargo_offline_no_crate", "cargo", "build", "cargo build --offline", "rust_crate"),
    # -- dependency resolution ----------------------------------------------------------
    C("dependency_resolution", "pip_no_matching_version", "pip", "install",
      "pip install --no-index --find-links . -r requirements.txt", "py_reqs"),
    C("dependency_resolution", "pip_conflicting_pins", "pip", "install",
      "pip install --no-index --find-links . -r conflict.txt", "py_reqs"),
    C("dependency_resolution", "uv_unsatisfiable", "uv", "install",
      "uv pip compile --offline --no-cache conflict.txt", "py_reqs"),
    C("dependency_resolution", "poetry_solver_failed", "poetry", "install",
      "poetry lock --no-interaction", "poetry_conflict"),
    # -- network errors -----------------------------------------------------------------
    C("network_error", "pip_connection_refused", "pip", "install",
      "pip install --retries 1 --timeout 3 --index-url http://127.0.0.1:9/simple left-pad"),
    C("network_error", "npm_econnrefused", "npm", "install",
      "npm install --registry http://127.0.0.1:9/ --fetch-retries 0 --no-audit --no-fund", "npm_net"),
    C("network_error", "uv_connection_refused", "uv", "install",
      "uv pip install --no-cache --python /opt/py/bin/python --index-url http://127.0.0.1:9/simple left-pad"),
    C("network_error", "go_proxy_refused", "go", "install",
      "GOPROXY=http://127.0.0.1:9 go mod download github.com/google/uuid@v1.6.0", "go_import"),
    C("network_error", "git_clone_refused", "git", "install", "git clone http://127.0.0.1:9/repo.git"),
    C("network_error", "npx_fetch_no_network", "npm", "lint",
      "npx --no-install prettier --check .", "js_test"),
    C("network_error", "python_dns_failure", "python", "test",
      "python3 -c \"import urllib.request; urllib.request.urlopen('http://pypi.org/simple/')\""),
    # -- out of memory ------------------------------------------------------------------
    C("out_of_memory", "python_oom_killed", "python", "test", "python3 hog.py", "py_oom", memory_mb=64),
    C("out_of_memory", "pytest_oom_killed", "pytest", "test",
      "pytest -q -p no:cacheprovider test_hog.py", "py_oom", memory_mb=96),
    C("out_of_memory", "python_memory_error", "python", "test",
      "python3 -c 'blob = bytearray(10**13)'"),
    C("out_of_memory", "node_heap_exhausted", "node", "test",
      "node --max-old-space-size=32 -e 'const a = []; for (;;) a.push(new Array(1e5).fill(7))'"),
    # -- test failures ------------------------------------------------------------------
    C("test_failure", "pytest_assert", "pytest", "test", "pytest -q -p no:cacheprovider", "py_test"),
    C("test_failure", "jest_expect", "jest", "test", "jest --ci --colors=false", "js_test"),
    C("test_failure", "go_test_fail", "go", "test", "go test ./...", "go_test"),
    C("test_failure", "unittest_fail", "python", "test",
      "python3 -m unittest -v test_unit", "py_test"),
    # -- flaky tests --------------------------------------------------------------------
    C("flaky_test", "pytest_reruns", "pytest", "test",
      "pytest -q -p no:cacheprovider --reruns 2 test_flaky.py", "py_flaky"),
    C("flaky_test", "pytest_address_in_use", "pytest", "test",
      "pytest -q -p no:cacheprovider test_server.py", "py_addr"),
    C("flaky_test", "jest_test_timeout", "jest", "test", "jest --ci --colors=false", "jest_timeout"),
    # -- timeouts -----------------------------------------------------------------------
    C("timeout", "pytest_timeout_plugin", "pytest", "test",
      "pytest -q -p no:cacheprovider --timeout 2 test_slow.py", "py_timeout"),
    C("timeout", "container_wall_clock", "pytest", "test",
      "pytest -q -p no:cacheprovider test_slow.py", "py_timeout", timeout_s=6),
    C("timeout", "coreutils_timeout", "sh", "build", "timeout 1 sleep 5"),
    # -- lint errors --------------------------------------------------------------------
    C("lint_error", "ruff_check", "ruff", "lint", "ruff check --no-cache app.py", "py_lint"),
    C("lint_error", "flake8", "flake8", "lint", "flake8 app.py", "py_lint"),
    C("lint_error", "eslint", "eslint", "lint", "eslint --no-color app.js", "js_lint"),
    # -- compile errors -----------------------------------------------------------------
    C("compile_error", "gcc_expected_semicolon", "gcc", "build", "gcc -Wall -o main main.c", "c_compile"),
    C("compile_error", "gcc_undefined_reference", "gcc", "build", "gcc -o link link.c", "c_compile"),
    C("compile_error", "go_build_undefined", "go", "build", "go build ./...", "go_compile"),
    C("compile_error", "rustc_expected", "rustc", "build", "rustc main.rs", "rust_compile"),
    # -- disk full ----------------------------------------------------------------------
    C("disk_full", "dd_no_space", "sh", "build",
      "dd if=/dev/zero of=/small/blob bs=64k count=100", small_disk=True),
    C("disk_full", "python_errno_28", "python", "test",
      "python3 -c \"open('/small/data.bin', 'wb').write(b'0' * 5_000_000)\"", small_disk=True),
    C("disk_full", "cp_no_space", "sh", "install", "cp -r /opt/py/lib /small/", small_disk=True),
    # -- permission denied --------------------------------------------------------------
    C("permission_denied", "python_errno_13", "python", "test",
      "python3 -c \"open('/etc/app.conf', 'w').write('x')\"", user="1000:1000"),
    C("permission_denied", "pip_site_packages", "pip", "install",
      "pip install --no-index --no-build-isolation ./libb", "poetry_conflict", user="1000:1000"),
    C("permission_denied", "npm_global_eacces", "npm", "install",
      "npm install -g --offline --no-audit --no-fund .", "js_test", user="1000:1000"),
    C("permission_denied", "script_not_executable", "sh", "build", "./run.sh", "py_lint"),
    C("permission_denied", "read_only_filesystem", "sh", "build",
      "touch /usr/local/app.lock", read_only=True),
    # -- missing tools ------------------------------------------------------------------
    C("missing_tool", "sh_command_not_found", "sh", "build", "cargo build --release"),
    C("missing_tool", "python_no_module_named_tool", "python", "lint", "python3 -m black --check ."),
    C("missing_tool", "env_no_such_file", "sh", "build", "env node18 --version"),
    C("missing_tool", "npm_missing_script", "npm", "lint", "npm run lint", "js_test"),
    # -- unknown ------------------------------------------------------------------------
    C("unknown", "empty_exit_3", "sh", "build", "exit 3"),
    C("unknown", "german_message", "python", "build",
      "python3 -c \"import sys; sys.exit('Fehler: Die Konfiguration konnte nicht gelesen werden')\""),
    C("unknown", "binary_output", "sh", "build", "head -c 3000 /dev/urandom; exit 1"),
    C("unknown", "segfault", "python", "test", "python3 -c 'import ctypes; ctypes.string_at(0)'"),
    C("unknown", "japanese_message", "sh", "build", "echo 'エラー: 予期しない状態です'; exit 2"),
)


def stack_check(case: Case) -> Case:
    """A case whose command is `__stack__ <stack> <check>`: that check's command, read from
    recipes/stacks/ (the real check, run as the sandbox runs it)."""
    if not case.command.startswith("__stack__ "):
        return case
    import tomllib
    from dataclasses import replace

    _, stack, name = case.command.split()
    recipe = tomllib.loads((HERE.parents[2] / "recipes" / "stacks" / f"{stack}.toml").read_text())
    command = next(c["command"] for c in recipe["checks"] if c["name"] == name)
    return replace(case, command=command)


def build_image(client: object) -> None:
    dockerfile = (HERE / "toolbox.Dockerfile").read_text()
    print(f"building {IMAGE} (host network, a few minutes the first time)", file=sys.stderr)
    import io

    client.images.build(  # type: ignore[attr-defined]
        fileobj=io.BytesIO(dockerfile.encode()), tag=IMAGE, network_mode="host", rm=True
    )


def run_case(client: object, case: Case) -> dict[str, object]:
    import requests.exceptions

    volumes = {}
    prep = "mkdir -p /w/.home && "
    if case.fixture:
        volumes[str(FIXTURES / case.fixture)] = {"bind": "/fixture", "mode": "ro"}
        prep += "cp -r /fixture/. /w/ && "
    tmpfs = {"/w": "size=256m,exec,mode=1777", "/tmp": "size=256m,exec,mode=1777"}
    if case.small_disk:
        tmpfs["/small"] = "size=1m,mode=1777"
    container = client.containers.run(  # type: ignore[attr-defined]
        IMAGE,
        ["sh", "-c", prep + "cd /w && " + case.command],
        detach=True,
        network_mode="none",
        mem_limit=f"{case.memory_mb}m",
        memswap_limit=f"{case.memory_mb}m",
        volumes=volumes,
        tmpfs=tmpfs,
        user=case.user,
        read_only=case.read_only,
        environment={"HOME": "/w/.home", "GOCACHE": "/w/.home/go-cache",
                     "GOPATH": "/w/.home/go", "CI": "true"},
    )
    started = time.monotonic()
    limit = None
    try:
        exit_code = int(container.wait(timeout=case.timeout_s)["StatusCode"])
    except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError):
        container.kill()
        exit_code = int(container.wait(timeout=30)["StatusCode"])
        limit = "timeout"
    duration = time.monotonic() - started
    container.reload()
    if limit is None and container.attrs["State"].get("OOMKilled"):
        limit = "memory"
    output: bytes = container.logs(stdout=True, stderr=True)
    container.remove(force=True)
    return {"exit_code": exit_code, "limit": limit, "duration_s": round(duration, 1),
            "output": output[-MAX_LOG:]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=None, help="case names to regenerate")
    parser.add_argument("--no-build", action="store_true", help="reuse the toolbox image")
    args = parser.parse_args()
    import docker

    client = docker.from_env(timeout=600)
    if not args.no_build:
        build_image(client)
    cases = [stack_check(c) for c in CASES if not args.only or c.name in args.only]
    for case in cases:
        result = run_case(client, case)
        folder = HERE / case.klass
        folder.mkdir(exist_ok=True)
        output = result.pop("output")
        assert isinstance(output, bytes)
        (folder / f"{case.name}.log").write_bytes(output)
        meta = {"class": case.klass, "tool": case.tool, "step": case.step,
                "command": case.command, "exit_code": result["exit_code"],
                "limit": result["limit"]}
        (folder / f"{case.name}.json").write_text(json.dumps(meta, indent=2) + "\n")
        first = output.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
        print(f"{case.klass:22} {case.name:30} exit={result['exit_code']:<4} "
              f"limit={result['limit']!s:7} {result['duration_s']:5}s  {first[0][:70]}",
              file=sys.stderr)
    if not args.only:
        known = {(c.klass, c.name) for c in CASES}
        for log in HERE.glob("*/*.log"):
            if (log.parent.name, log.stem) not in known:
                log.unlink()
                log.with_suffix(".json").unlink(missing_ok=True)
    shutil.rmtree(HERE / "__pycache__", ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
