"""The test command a Node project defines for itself: its base commit's `test` script.

The tests gate runs the script that `package.json` held at the base commit, not the
head's: a change cannot redefine what "the tests pass" means (`"test": "exit 0"`). The
script runs as `npm test` would run it (`sh -c`, the project's and the image's
`node_modules/.bin` first on PATH), without npm, which would read the head's
`package.json` and `.npmrc`.

JUnit, so the gate can count tests, skips and failures:

1. A script that runs one test runner once, choosing no reporter or report file of its
   own, gets that runner's built-in report added to the call (`RUNNERS`): `node --test`
   Node's `spec` to the output and `junit` to the report (Node 18.19 and later; Debian
   bookworm's nodejs is 18.20); vitest its `default` and `junit` reporters; mocha its
   `xunit` reporter (JUnit XML) to the report, the output then quiet; jest, which has no
   JUnit reporter of its own, its `--json` results, turned into JUnit by the gate
   (`karma.gates.jestjson`). `npx jest`, `npx --no-install vitest run` are the same call.
2. Otherwise the stack's `junit_command` when the recipe sets one (a team whose suite has
   `jest-junit` or `mocha-junit-reporter` says so there, in trusted data).
3. Otherwise the script alone, judged by its exit code; new skips are then found in the
   change's diff only (`karma.gates.jsskips`).

Trust: `package.json` is read from the base commit's git objects (`karma.testcommand`'s
reader: regular files no larger than its `MAX_BYTES`), parsed as JSON data and nothing else;
a script that is not a string, or a file that does not parse, is the stack's default.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass

from karma.recipes import Stack
from karma.testenvs import Read, TestCommand

REPORTERS = (
    "--test-reporter=spec --test-reporter-destination=stdout "
    "--test-reporter=junit --test-reporter-destination={junit}"
)
"""Node's own reporters: the run's usual text to the output, JUnit XML to `{junit}`."""


@dataclass(frozen=True)
class Runner:
    """A test runner a `test` script may call, and the report it is asked for."""

    name: str
    call: re.Pattern[str]
    """The call; the report's arguments go right after what it matches."""
    report: str
    """Arguments that write its report to `{junit}` (and keep its usual output)."""
    chooses: re.Pattern[str]
    """A script that already picks a reporter or report file: left as it is."""

    def added_to(self, script: str) -> str:
        """`script` with the report's arguments after this runner's one call."""
        return self.call.sub(lambda m: f"{m.group(0)} {self.report}", script, count=1)


_CALL = r"(?<![\w./@-]){}(?![\w.@/-])"
RUNNERS = (
    Runner("node --test", re.compile(_CALL.format(r"node\s+--test")), REPORTERS,
           re.compile(r"--test-reporter")),
    Runner("vitest", re.compile(_CALL.format(r"vitest(?:\s+run(?![\w-]))?")),
           "--reporter=default --reporter=junit --outputFile.junit={junit}",
           re.compile(r"--reporter|--outputFile")),
    Runner("mocha", re.compile(_CALL.format("mocha")),
           "--reporter xunit --reporter-option output={junit}",
           re.compile(r"--reporter\b|(?<![\w-])-R(?![\w-])|--reporter-option")),
    Runner("jest", re.compile(_CALL.format("jest")), "--json --outputFile={junit}",
           re.compile(r"--json|--outputFile")),
)  # fmt: skip
"""The runners whose built-in report the gate knows, JUnit XML or (jest) JSON."""
PATH = 'PATH="$PWD/node_modules/.bin:/node_modules/.bin:$PATH"'
"""Where `npm run` finds a project's tools: its own and the stack image's node_modules."""


def test_script(read: Read) -> str | None:
    """The `scripts.test` of the base's `package.json`; None when there is none."""
    text = read("package.json")
    if text is None:
        return None
    try:
        manifest = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return None
    scripts = manifest.get("scripts") if isinstance(manifest, dict) else None
    script = scripts.get("test") if isinstance(scripts, dict) else None
    return script if isinstance(script, str) and script.strip() else None


def runner_of(script: str) -> Runner | None:
    """The one known runner `script` calls, once; None for none, several calls, or a
    script that picks its reporters itself."""
    called = [(r, len(r.call.findall(script))) for r in RUNNERS]
    found = [r for r, count in called if count]
    if len(found) != 1 or sum(count for _, count in called) != 1:
        return None
    return None if found[0].chooses.search(script) else found[0]


def with_reporters(script: str) -> str | None:
    """`script` with its runner's report added to its one call (module docstring); None
    when it calls no known runner, several, or picks reporters itself."""
    runner = runner_of(script)
    return None if runner is None else runner.added_to(script)


def node_command(read: Read, stack: Stack) -> TestCommand:
    """The tests gate's command for a Node project (module docstring)."""
    script = test_script(read)
    if script is None:
        return TestCommand(stack.junit_command or stack.test_command, "the stack's default",
                           "package.json has no `test` script at the base commit")  # fmt: skip
    runner = runner_of(script)
    if runner is not None:
        reported = runner.added_to(script)
        return TestCommand(f"{PATH} sh -c {shlex.quote(reported)}", "package.json scripts.test",
                           f"its {runner.name} run, with the runner's report added")  # fmt: skip
    if stack.junit_command:
        return TestCommand(stack.junit_command, f"the {stack.name} stack's junit_command",
                           "the `test` script runs no runner whose report KARMA adds")  # fmt: skip
    return TestCommand(f"{PATH} sh -c {shlex.quote(script)}", "package.json scripts.test",
                       "run as the base commit defines it; no JUnit report (no one call of "
                       "node --test, vitest, mocha or jest, and the stack sets no "
                       "junit_command)")  # fmt: skip
