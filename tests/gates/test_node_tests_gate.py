"""The tests gate on a Node project: the base's `test` script, Node's JUnit report, skips.

The Docker tests run the gate in the real Node stack image (Debian's nodejs 18.20, its
`node --test` with the junit reporter) on a repository whose suite is node:test's
`describe`/`it`: a change that makes a test fail, one that adds an `it.skip`, one that
deletes a test and one that redefines the `test` script as `exit 0` each fail the gate.
The others attack the inputs: a JUnit report the sandbox wrote that is huge or declares
entities, a `package.json` that is not an object, skip forms hidden from a runner that
writes no report.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from karma.config import KarmaConfig
from karma.gates import GateContext, load_suite, run_suite
from karma.gates.interface import GateResult, GateUnavailable
from karma.gates.jsskips import is_test_script, new_skips
from karma.gates.junit import MAX_REPORT_BYTES, outcomes, parse_junit
from karma.nodecommand import node_command, with_reporters
from karma.recipes import detect_stack, load_stacks
from tests.gates.conftest import git, make_repo, write

TESTS = """"use strict";
const { describe, it } = require("node:test");
const assert = require("node:assert/strict");
const { add } = require("../src/add.js");

describe("add", () => {
  it("adds", () => {
    assert.equal(add(2, 3), 5);
  });
  it("adds negatives", () => {
    assert.equal(add(-2, -3), -5);
  });
});
"""
PACKAGE = {"name": "adder", "version": "1.0.0", "private": True,
           "scripts": {"test": "node --test test/"}}  # fmt: skip
BASE = {
    "package.json": json.dumps(PACKAGE, indent=2) + "\n",
    "src/add.js": '"use strict";\nexports.add = (a, b) => a + b;\n',
    "test/add.test.js": TESTS,
}
NODE = next(s for s in load_stacks() if s.name == "node")


# -- the command ------------------------------------------------------------------------


def test_a_node_test_script_gets_nodes_junit_reporter() -> None:
    chosen = node_command(BASE.get, NODE)
    assert chosen.source == "package.json scripts.test"
    assert "--test-reporter=junit --test-reporter-destination={junit}" in chosen.command
    assert chosen.command.startswith('PATH="$PWD/node_modules/.bin:/node_modules/.bin:$PATH"')
    assert with_reporters("tsc && node --test test/") == (
        "tsc && node --test --test-reporter=spec --test-reporter-destination=stdout "
        "--test-reporter=junit --test-reporter-destination={junit} test/"
    )
    # Two runs, or a reporter of the script's own: the script as it is, by its exit code.
    assert with_reporters("node --test a/ && node --test b/") is None
    assert with_reporters("node --test --test-reporter=tap") is None
    assert with_reporters("eslint . && ava") is None


@pytest.mark.parametrize(
    "manifest",
    ["[1, 2]", '{"scripts": "node --test"}', '{"scripts": {"test": 7}}', "{not json", "{}"],
)
def test_a_package_json_that_is_not_what_it_should_be_is_the_stacks_default(
    manifest: str,
) -> None:
    chosen = node_command({"package.json": manifest}.get, NODE)
    assert chosen.command == NODE.test_command and chosen.source == "the stack's default"


def test_another_runner_uses_the_stacks_junit_command_when_the_recipe_sets_one() -> None:
    ava = {"package.json": json.dumps({"scripts": {"test": "ava --verbose"}})}
    plain = node_command(ava.get, NODE)
    assert plain.command.endswith("sh -c 'ava --verbose'") and "{junit}" not in plain.command
    named = NODE.model_copy(update={"junit_command": "ava --tap > {junit}.tap"})
    assert node_command(ava.get, named).command == "ava --tap > {junit}.tap"


def test_doctor_and_plan_show_the_node_command_of_head(tmp_path: Path) -> None:
    from karma.testcommand import for_repo

    repo = make_repo(tmp_path / "r", BASE)
    chosen = for_repo(repo)
    assert chosen is not None and chosen.source == "package.json scripts.test", chosen
    assert "node --test --test-reporter=spec" in chosen.command


# -- skips from the diff ----------------------------------------------------------------


def test_each_js_skip_form_added_to_a_test_file_is_a_new_skip() -> None:
    forms = [
        'it.skip("x", () => {});', 'test.skip("x", () => {});', 'describe.skip("g", () => {});',
        'test.todo("later");', 'xit("x", () => {});', 'xdescribe("g", () => {});',
        'it.only("x", () => {});', 'test("x", { skip: true }, () => {});',
        'test("x", { todo: "later" }, () => {});', '  t.skip("no");', "  this.skip();",
        'test.concurrent.skip("x", () => {});', 'it.skipIf(process.env.CI)("x", () => {});',
    ]  # fmt: skip
    for form in forms:
        head = TESTS + form + "\n"
        found = new_skips("test/add.test.js", head, TESTS, [(14, form)])
        assert [f.rule for f in found] == ["tests.new-skip-marker"], form
        assert found[0].line == 14
    # What the base already had, moved or not, and ordinary code are not skips.
    moved = 'it.skip("x", () => {});\n' + TESTS
    assert new_skips("test/a.test.js", moved, TESTS + 'it.skip("x", () => {});\n', []) == []
    ordinary = TESTS + "const page = find({ skip: 10 });\nskipped.push(1);\n"
    assert (
        new_skips("test/a.test.js", ordinary, TESTS, [(14, "const page = find({ skip: 10 });")])
        == []
    )


def test_only_test_scripts_are_scanned_for_skips() -> None:
    assert is_test_script("test/add.js") and is_test_script("src/add.test.ts")
    assert is_test_script("src/__tests__/a.tsx") and is_test_script("a.spec.mjs")
    assert not is_test_script("src/add.ts") and not is_test_script("node_modules/x/test/a.js")
    assert not is_test_script("test/notes.md")


# -- the report is the sandbox's: untrusted ---------------------------------------------


def test_a_junit_report_over_the_limit_is_refused_before_parsing(tmp_path: Path) -> None:
    report = tmp_path / "junit.xml"
    with report.open("wb") as out:
        out.write(b"<testsuites>")
        out.truncate(MAX_REPORT_BYTES + 1)  # sparse: the size alone refuses it
    with pytest.raises(GateUnavailable, match="refused"):
        parse_junit(report)


def test_a_junit_report_with_entities_is_refused(tmp_path: Path) -> None:
    entities = "".join(
        f'<!ENTITY lol{i} "{("&lol%s;" % (i - 1 if i > 1 else "")) * 10}">' for i in range(1, 10)
    )
    laughs = (
        f'<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol">{entities}]>\n'
        '<testsuites><testcase classname="t" name="&lol9;"/></testsuites>\n'
    )
    report = tmp_path / "junit.xml"
    report.write_text(laughs)
    with pytest.raises(GateUnavailable, match="DOCTYPE"):
        parse_junit(report)
    external = '<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><testsuites/>'
    report.write_text(external)
    with pytest.raises(GateUnavailable, match="DOCTYPE"):
        outcomes(report)


def test_nodes_describe_blocks_keep_same_named_tests_apart(tmp_path: Path) -> None:
    """Node's reporter names every case's class `test`: the suites tell them apart."""
    report = tmp_path / "junit.xml"
    report.write_text(
        '<testsuites><testsuite name="a"><testcase name="works" classname="test"/>'
        '</testsuite><testsuite name="b"><testcase name="works" classname="test">'
        '<skipped type="todo" message="true"/></testcase></testsuite></testsuites>'
    )
    assert outcomes(report) == {"a::test::works": "passed", "b::test::works": "skipped"}
    counts, _ = parse_junit(report)
    assert (counts.tests, counts.skipped) == (2, 1)


# -- the gate in the real Node image ----------------------------------------------------


@pytest.fixture(scope="module")
def node_image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[KarmaConfig, str]]:
    from karma.sandbox.images import ensure_image

    base = os.environ.get("KARMA_BASE_IMAGE", "karma/base:bookworm")
    config = KarmaConfig.model_validate({"sandbox": {"base_image": base}})
    repo = make_repo(tmp_path_factory.mktemp("image") / "r", BASE)
    yield config, ensure_image("node", repo, config)


def _gate(repo: Path, config: KarmaConfig, image: str) -> GateResult:
    from karma.sandbox import get_sandbox

    stack = detect_stack(repo)
    assert stack is not None and stack.name == "node"
    ctx = GateContext(
        repo=repo, base=git(repo, "rev-parse", "HEAD"), config=config, stack=stack,
        start_sandbox=get_sandbox(config).start, sandbox_image=image, run_id="node-gate",
    )  # fmt: skip
    result = run_suite(ctx, load_suite().only(("tests",))).result("tests")
    assert result is not None
    return result


@pytest.mark.docker
def test_the_gate_counts_node_tests_and_fails_a_failing_one(
    tmp_path: Path, node_image: tuple[KarmaConfig, str]
) -> None:
    config, image = node_image
    repo = make_repo(tmp_path / "r", BASE)
    write(repo, {"test/add.test.js": TESTS.replace("-5);", "-6);")})
    result = _gate(repo, config, image)
    assert result.status == "failed", result
    assert (result.data["tests"], result.data["failures"], result.data["base_tests"]) == (2, 1, 2)
    assert [f.rule for f in result.findings] == ["tests.failure"], result.findings
    assert "adds negatives failed" in result.findings[0].message
    assert result.data["command_source"] == "package.json scripts.test"


@pytest.mark.docker
def test_the_gate_fails_a_new_it_skip_and_a_deleted_test(
    tmp_path: Path, node_image: tuple[KarmaConfig, str]
) -> None:
    config, image = node_image
    repo = make_repo(tmp_path / "r", BASE)
    write(
        repo, {"test/add.test.js": TESTS.replace('it("adds negatives"', 'it.skip("adds negatives"')}
    )
    skipped = _gate(repo, config, image)
    assert skipped.status == "failed", skipped
    rules = sorted(f.rule for f in skipped.findings)
    assert rules == ["tests.new-skip", "tests.new-skip-marker"], skipped.findings
    assert skipped.data["skipped"] == 1
    # A test deleted: fewer than the base's.
    write(repo, {"test/add.test.js": TESTS.split('  it("adds negatives"')[0] + "});\n"})
    fewer = _gate(repo, config, image)
    assert fewer.status == "failed" and [f.rule for f in fewer.findings] == ["tests.fewer-tests"]
    assert "add::test::adds negatives" in fewer.findings[0].message


@pytest.mark.docker
def test_a_change_cannot_redefine_the_test_script(
    tmp_path: Path, node_image: tuple[KarmaConfig, str]
) -> None:
    config, image = node_image
    repo = make_repo(tmp_path / "r", BASE)
    cheat = {**PACKAGE, "scripts": {"test": "exit 0"}}
    write(repo, {"package.json": json.dumps(cheat), "src/add.js": "exports.add = () => 0;\n"})
    result = _gate(repo, config, image)
    assert result.status == "failed" and result.data["failures"] == 2, result
