"""The dashboard demo (`KARMA_DEMO=dashboard examples/demo.sh`): the seed's feature, "a
user dashboard with real-time metrics", built on a TypeScript project by the scripted
model through the demo script itself, with real Docker, git, npm, tsc and `node --test`.

The plan is the API first, then the dashboard component and the WebSocket stream in
parallel, then the app and its end-to-end tests; the component's first attempt assigns a
`string[]` to a `string`, tsc rejects it (`error TS2322`), the failure is a `type_error`
and the next attempt, told the hint, heals it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from karma.home import builtin_dir
from karma.testing.repos import git

pytestmark = pytest.mark.docker

DEMO = builtin_dir("examples") / "demo.sh"


def test_the_dashboard_demo_builds_the_seed_feature(
    tmp_path: Path, docker_engine: str, osv_url: str
) -> None:
    env = {
        **os.environ,
        "KARMA_DEMO": "dashboard",
        "KARMA_BASE_IMAGE": docker_engine,
        "KARMA_OSV_URL": osv_url,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    env.pop("KARMA_SCRIPT", None)
    done = subprocess.run(
        ["bash", str(DEMO), str(tmp_path)], env=env, capture_output=True, text=True, timeout=1500
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert result["status"] == "succeeded", result
    tasks = {t["id"]: t for t in result["tasks"]}
    assert set(tasks) == {"api", "component", "stream", "integration"}
    assert all(t["status"] == "succeeded" and t["stack"] == "node" for t in tasks.values())
    healed = tasks["component"]
    assert healed["attempts"] == 2, healed
    first = healed["history"][0]
    assert first["class"] == "type_error" and first["pattern"] == "js.tsc.type", first
    assert first["remediation"] == "retry_with_hint", first
    assert all(tasks[t]["attempts"] == 1 for t in ("api", "stream", "integration"))
    gates = {g["name"]: g for g in result["gates"]}
    assert gates["tests"]["status"] == "passed", gates["tests"]
    repo = tmp_path / "dashboard"
    files = set(git(repo, "ls-tree", "-r", "--name-only", result["branch"]).split())
    assert {"src/api.ts", "src/dashboard.ts", "src/stream.ts", "src/app.ts"} <= files
    assert {"test/integration.test.js", "test/stream.test.js"} <= files
    assert not any(f.startswith(("dist/", "node_modules/")) for f in files), files
    # The DAG's order: the page and the stream each saw the API; the app saw both.
    log = git(repo, "log", "--format=%(trailers:key=Karma-Task,valueonly)", result["branch"])
    order = [line for line in log.split() if line][::-1]
    assert order[0] == "api" and order[-1] == "integration", order
    assert set(order[1:3]) == {"component", "stream"}, order
