"""A flaky test: the failed tests are rerun on the attempt's own change, pass on a rerun,
and the task is integrated without asking the model again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from karma.store import Store
from karma.testing.demo import conversation, demo_script
from karma.testing.repos import git

pytestmark = pytest.mark.docker

# Fails on the first run in a container and passes on the next: the state is in the
# sandbox's own /tmp, so every new sandbox starts over.
FLAKY_TEST = """import os


def test_sometimes():
    path = "/tmp/karma-flaky-count"
    count = int(open(path).read()) if os.path.exists(path) else 0
    open(path, "w").write(str(count + 1))
    print("FLAKY-MARKER")
    assert count % 2 == 1
"""

# This repository has learned that FLAKY-MARKER failures are flaky (as `karma memory
# reflect --apply` would write it).
LEARNED = """patterns:
  - id: learned.flaky_marker
    class: flaky_test
    description: A test known to fail now and then.
    confidence: 0.99
    match:
      output: ['FLAKY-MARKER']
      steps: [test]
    hint: This test is flaky; rerun it.
    remediations:
      - {name: rerun_failed_tests, prior: 0.9}
"""


def test_flaky_test_passes_on_rerun_of_the_same_change(karma_build: Any, demo_repo: Path) -> None:
    learned = demo_repo / ".karma" / "recipes" / "learned"
    learned.mkdir(parents=True)
    (learned / "flaky.yaml").write_text(LEARNED)
    script = demo_script()
    calls = conversation(script, "csv_export")["replies"][0]["tool_calls"]
    calls.append({"name": "write_file",
                  "arguments": {"path": "tests/test_flaky.py", "content": FLAKY_TEST}})  # fmt: skip
    code, result = karma_build(script, "--no-gates")
    assert code == 0, result
    task = next(t for t in result["tasks"] if t["id"] == "csv_export")
    assert task["attempts"] == 2 and task["status"] == "succeeded"
    first, second = task["history"]
    assert (first["class"], first["pattern"], first["remediation"]) == (
        "flaky_test",
        "learned.flaky_marker",
        "rerun_failed_tests",
    )
    assert second["status"] == "succeeded"
    store = Store(demo_repo / ".karma" / "karma.db")
    assert not [c for c in store.model_calls(result["run_id"], "csv_export") if c["attempt"] == 2]
    assert "test_sometimes" in git(demo_repo, "show", f"{result['branch']}:tests/test_flaky.py")
