"""The test command a Node project defines for itself: its base commit's `test` script.

The tests gate runs the script that `package.json` held at the base commit, not the
head's: a change cannot redefine what "the tests pass" means (`"test": "exit 0"`). The
script runs as `npm test` would run it (`sh -c`, the project's and the image's
`node_modules/.bin` first on PATH), without npm, which would read the head's
`package.json` and `.npmrc`.

JUnit, so the gate can count tests, skips and failures:

1. A script that runs `node --test` once (and chooses no reporter of its own) gets Node's
   own reporters added to that call: `spec` to the output, `junit` to the report
   (Node 18.19 and later have both; Debian bookworm's nodejs is 18.20).
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

from karma.recipes import Stack
from karma.testenvs import Read, TestCommand

REPORTERS = (
    "--test-reporter=spec --test-reporter-destination=stdout "
    "--test-reporter=junit --test-reporter-destination={junit}"
)
"""Node's own reporters: the run's usual text to the output, JUnit XML to `{junit}`."""
NODE_TEST = re.compile(r"(?<![\w./-])node(\s+)--test(?![\w-])")
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


def with_reporters(script: str) -> str | None:
    """`script` with Node's JUnit reporter added to its one `node --test` call; None when
    it has no such call, several, or picks reporters itself."""
    if len(NODE_TEST.findall(script)) != 1 or "--test-reporter" in script:
        return None
    return NODE_TEST.sub(lambda m: f"node{m.group(1)}--test {REPORTERS}", script, count=1)


def node_command(read: Read, stack: Stack) -> TestCommand:
    """The tests gate's command for a Node project (module docstring)."""
    script = test_script(read)
    if script is None:
        return TestCommand(stack.junit_command or stack.test_command, "the stack's default",
                           "package.json has no `test` script at the base commit")  # fmt: skip
    reported = with_reporters(script)
    if reported is not None:
        return TestCommand(f"{PATH} sh -c {shlex.quote(reported)}", "package.json scripts.test",
                           "its `node --test` run, with Node's JUnit reporter added")  # fmt: skip
    if stack.junit_command:
        return TestCommand(stack.junit_command, f"the {stack.name} stack's junit_command",
                           "the `test` script does not run `node --test`")  # fmt: skip
    return TestCommand(f"{PATH} sh -c {shlex.quote(script)}", "package.json scripts.test",
                       "run as the base commit defines it; no JUnit report (not `node --test`, "
                       "and the stack sets no junit_command)")  # fmt: skip
