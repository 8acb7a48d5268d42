"""The tests gate on Node projects tested with jest, vitest and mocha: each runner's report.

The Docker tests run the gate in the real Node stack image of three fixture projects
(`tests/gates/fixtures/node-{jest,vitest,mocha}`, their lockfiles made by npm against the
public registry): the base's `test` script gets the runner's own report (vitest's and
mocha's JUnit, jest's `--json` made JUnit by the gate), so a failing test fails the gate
and is named, a new `it.skip` is a new skip, and a jest file that does not even load is
an errored test. The others attack the jest report the sandbox writes.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from karma.config import KarmaConfig
from karma.gates.interface import GateUnavailable
from karma.gates.jestjson import as_junit, is_jest_json
from karma.gates.junit import MAX_REPORT_BYTES, parse_junit
from karma.nodecommand import node_command, runner_of, with_reporters
from karma.recipes import load_stacks
from tests.gates.conftest import git
from tests.gates.test_node_tests_gate import _gate

FIXTURES = Path(__file__).parent / "fixtures"
NODE = next(s for s in load_stacks() if s.name == "node")


# -- the command ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("script", "reported"),
    [
        ("jest", "jest --json --outputFile={junit}"),
        ("npx jest --coverage", "npx jest --json --outputFile={junit} --coverage"),
        ("tsc && vitest run src",
         "tsc && vitest run --reporter=default --reporter=junit --outputFile.junit={junit} src"),
        ("mocha test/", "mocha --reporter xunit --reporter-option output={junit} test/"),
    ],
)  # fmt: skip
def test_a_script_calling_one_known_runner_gets_its_report(script: str, reported: str) -> None:
    assert with_reporters(script) == reported


@pytest.mark.parametrize(
    "script",
    [
        "jest --json",  # the script writes its own report
        "vitest run --reporter=dot",
        "mocha -R spec",
        "jest && mocha",  # two runners
        "ts-jest x && jest-junit",  # names that only contain a runner's
        "./node_modules/.bin/jest",  # not the plain call
    ],
)
def test_a_script_that_chooses_or_calls_several_is_left_as_it_is(script: str) -> None:
    assert with_reporters(script) is None


def test_the_gate_names_the_runner_it_added_a_report_to() -> None:
    chosen = node_command({"package.json": '{"scripts": {"test": "vitest run"}}'}.get, NODE)
    assert chosen.reason == "its vitest run, with the runner's report added"
    assert runner_of("tsc && node --test test/") is not None


# -- jest's report, untrusted -----------------------------------------------------------


def _jest(tmp_path: Path, results: object) -> Path:
    path = tmp_path / "junit.xml"
    path.write_text(json.dumps(results))
    return path


def test_jest_results_become_junit_items_relative_to_the_runs_root(tmp_path: Path) -> None:
    results = {"testResults": [
        {"name": "/workspace/test/a.test.js", "status": "failed", "message": "",
         "assertionResults": [
            {"ancestorTitles": ["add"], "title": "adds", "status": "passed", "failureMessages": []},
            {"ancestorTitles": ["add"], "title": "fails", "status": "failed",
             "failureMessages": ["\x1b[31mError: expected 1\x1b[39m\n    at x"]},
            {"ancestorTitles": [], "title": "later", "status": "todo", "failureMessages": []},
        ]},
        {"name": "/workspace/test/broken.test.js", "status": "failed", "assertionResults": [],
         "message": "  ● Test suite failed to run\n\n    SyntaxError: Unexpected token"},
        {"name": "/elsewhere/../workspace/x.test.js", "status": "passed", "assertionResults": []},
    ]}  # fmt: skip
    report = _jest(tmp_path, results)
    assert is_jest_json(report)
    as_junit(report, "/workspace")
    assert not is_jest_json(report)
    (tmp_path / "test").mkdir()
    (tmp_path / "test" / "a.test.js").write_text("")
    counts, findings = parse_junit(report, tmp_path)
    assert (counts.tests, counts.failures, counts.errors, counts.skipped) == (4, 1, 1, 1)
    first = findings[0]
    assert (first.rule, first.path) == ("tests.failure", "test/a.test.js")
    assert first.message == "test/a.test.js::add > fails failed: Error: expected 1"
    assert findings[1].rule == "tests.error" and "SyntaxError" in findings[1].message


@pytest.mark.parametrize(
    "results",
    [[1, 2], {"testResults": "all passed"}, {"testResults": [7]}, "{" * 100_000],
)
def test_a_jest_report_not_of_jests_shape_is_refused(tmp_path: Path, results: object) -> None:
    report = tmp_path / "junit.xml"
    report.write_text(results if isinstance(results, str) else json.dumps(results))
    with pytest.raises(GateUnavailable, match="jest report"):
        as_junit(report, "/workspace")


def test_a_jest_report_over_the_limit_is_refused_before_parsing(tmp_path: Path) -> None:
    report = tmp_path / "junit.xml"
    with report.open("wb") as handle:
        handle.write(b"{")
        handle.truncate(MAX_REPORT_BYTES + 1)
    with pytest.raises(GateUnavailable, match="refused"):
        as_junit(report, "/workspace")


# -- the gate, in the real Node stack image ---------------------------------------------


def _repo(tmp_path: Path, runner: str) -> Path:
    repo = tmp_path / runner
    shutil.copytree(FIXTURES / f"node-{runner}", repo)
    git(repo, "init", "-q", "-b", "main")
    for key, value in (("user.email", "dev@example.com"), ("user.name", "Dev")):
        git(repo, "config", key, value)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base")
    return repo


@pytest.mark.docker
@pytest.mark.parametrize("runner", ["jest", "vitest", "mocha"])
def test_each_runners_report_counts_a_failing_test_and_a_new_skip(
    docker_engine: str, tmp_path: Path, runner: str
) -> None:
    from karma.sandbox.images import ensure_image

    config = KarmaConfig.model_validate({"sandbox": {"base_image": docker_engine}})
    repo = _repo(tmp_path, runner)
    image = ensure_image("node", repo, config)
    test_file = repo / "test" / "add.test.js"
    tests = test_file.read_text()
    test_file.write_text(tests.replace("-5);", "-6);").replace("toBe(-5)", "toBe(-6)"))
    failing = _gate(repo, config, image)
    assert failing.status == "failed", failing
    assert (failing.data["tests"], failing.data["failures"], failing.data["base_tests"]) == (
        2, 1, 2,
    ), failing.data  # fmt: skip
    assert [f.rule for f in failing.findings] == ["tests.failure"], failing.findings
    assert "adds negatives failed" in failing.findings[0].message
    assert failing.findings[0].path == "test/add.test.js"
    assert failing.data["command_source"] == "package.json scripts.test"

    test_file.write_text(tests.replace('it("adds negatives"', 'it.skip("adds negatives"'))
    skipped = _gate(repo, config, image)
    assert skipped.status == "failed", skipped
    assert sorted(f.rule for f in skipped.findings) == ["tests.new-skip", "tests.new-skip-marker"]
    assert (skipped.data["tests"], skipped.data["skipped"]) == (2, 1), skipped.data

    if runner == "jest":  # a file that does not load is an errored test, not a silent pass
        test_file.write_text(tests)
        (repo / "test" / "broken.test.js").write_text('describe("x", () => {\n')
        broken = _gate(repo, config, image)
        assert broken.status == "failed" and broken.data["errors"] == 1, broken.data
        assert [f.path for f in broken.findings] == ["test/broken.test.js"], broken.findings
