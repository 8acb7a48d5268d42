"""The BugSwarm reader of `collect_public.py`: failed CI jobs kept as test fixtures.

`BugSwarm/bugswarm` (BSD-3-Clause; Tomassi et al., ICSE 2019) keeps the original logs of
failed (and passed) Travis CI and GitHub Actions jobs of Java, Python and JavaScript
projects as fixtures of its log analysers (`tests/analyzer/**.log`,
`pair-classifier/tests/**.log`, ...). No person marked a chunk in these logs, so the
"marked" chunk is the one the runner and the build tool point at themselves:

- the job failed where the runner says so: Travis's first `The command "…" exited with N`
  (N ≠ 0), or GitHub Actions' first `##[error]Process completed with exit code N`;
  logs of jobs that passed, and logs where neither line is found, are skipped;
- inside that step, Maven's `BUILD FAILURE` block, Gradle's `FAILURE: Build failed
  with an exception.` block, or a test runner's report and verdict (pytest's
  `= N failed … in Ns =`, unittest/nose's `FAILED (failures=N)`, jest's `Tests: N
  failed`, mocha's `N failing`): the tool's own statement of what failed; or the
  runner's line alone when the step was killed (exit 137), the shell's `command not
  found` when it exited 127, Ant's `BUILD FAILED` and the JVM's own `Cannot allocate
  memory`; a failed step with none of these is skipped: without a person's mark or the
  tool's summary, nothing says why it failed.

The label: the generic `RULES` first for the classes no goal names (memory, disk, time,
network, access; a `Killed` line is the kernel's SIGKILL: out_of_memory); pytest's
collection errors by their first `E   <Error>` line; then `BUILD_RULES` (what the failed
Maven goal or Gradle task was, or the test runner's verdict); then the generic rules. A
step whose label comes out `unknown` is skipped (nobody marked a reason). One job per
build (the others rerun it on another JDK), one copy of a failure per repository, at
most `PER_REPO` a repository. Logs the analysers' authors edited (`-modified`,
`-latest`) and BugSwarm's reproductions (`-repr`, `reproduce_tmp`) are not copies of a
real job's log and are skipped. The group is the repository the job built
(`/home/travis/build/<owner>/<name>`, `Syncing repository:`); a log that names none is
skipped, so the by-repository split holds.
"""

from __future__ import annotations

import re
import subprocess
import urllib.parse
from pathlib import Path

import collect_public as cp

BUGSWARM = "BugSwarm/bugswarm"
PER_REPO = 6  # at most this many distinct failures of one repository

_FIRST = ("out_of_memory", "disk_full", "timeout", "permission_denied", "network_error")
BUILD_RULES: tuple[tuple[str, str, str], ...] = (
    ("permission_denied", r"(?:Return|HTTP response) code(?: is)?: 40[13]\b", "the repository manager refused the upload (401/403: deploy credentials)"),
    # The test JVM died without a 'Killed' line: why is not in the log (a crash, a bad JVM option).
    ("unknown", r"The forked VM terminated without (?:saying properly goodbye|properly saying goodbye)", "the forked test JVM died; the log does not say why"),
    ("test_failure", r"maven-(?:surefire|failsafe)-plugin[^\n]*(?:There are test failures|There was a timeout|failures)|There were failing tests|Execution failed for task '[^']*:(?:test|\w*[tT]est)'|Tests? (?:run )?failed|> There were failing tests", "the build's test task reported failing tests"),
    # A test runner's verdict that tests ran and failed (pytest, unittest/nose, jest, mocha);
    # errors alone (collection, import) are left to the generic rules.
    ("test_failure", r"=+ (?:\d+ \w+, )*\d+ failed\b[^=]* in [\d.]+ ?s\w*\b[^=]*=+|FAILED \((?:failures|errors)=\d+|Tests: +\d+ failed|(?:^|\s)\d+ failing(?:\s|$)", "the test runner reported failing tests"),
    ("test_failure", r"build\.xml:\d+: (?:Test \S+ failed|'[\w-]*test[\w-]*' failed|Tests? failed|Some tests failed)", "Ant's junit task reported failing tests"),
    ("dependency_resolution", r"Could not resolve dependencies|Could not find artifact|Could not resolve all (?:dependencies|files|artifacts)|Failed to collect dependencies|Could not find any version that matches|Plugin [^\n]* or one of its dependencies could not be resolved", "the build tool could not resolve a dependency"),
    ("lint_error", r"maven-(?:checkstyle|pmd|enforcer|javadoc|license|apache-rat|animal-sniffer)-plugin|(?:findbugs|spotbugs|qulice|spotless|formatter|impsort|fmt|forbiddenapis|revapi|japicmp|jacoco|cobertura)-maven-plugin|apache-rat|Execution failed for task '[^']*:(?:checkstyle\w*|pmd\w*|findbugs\w*|spotbugs\w*|spotless\w*|license\w*|javadoc|lint\w*|ktlint\w*|detekt|jacoco\w*|rat)'|Checkstyle rule violations|PMD Failure|Too many files with unapproved license|coverage checks have not been met", "a static check the build runs (style, licence headers, docs, coverage) rejected the change"),
    ("compile_error", r"maven-compiler-plugin|Compilation failure|COMPILATION ERROR|Execution failed for task '[^']*:compile\w*'|Compilation failed", "the compiler rejected the code"),
)  # fmt: skip
_BUILD_RULES = [(label, re.compile(rx), reason) for label, rx, reason in BUILD_RULES]
_REFINE = ("type_error", "import_error", "syntax_error")  # a compile failure the generic rules can name

_TRAVIS_FAIL = re.compile(r'^The command "(.*)" exited with ([1-9]\d*)\.$', re.M)
_TRAVIS_PASS = re.compile(r"^Done\. Your build exited with 0\.", re.M)
_GHA_FAIL = re.compile(r"^(?:\S+Z )?##\[error\]Process completed with exit code ([1-9]\d*)\.", re.M)
_TRAVIS_REPO = re.compile(r"/home/travis/build/([\w.-]+)/([\w.-]+)")
_GHA_REPO = re.compile(r"Syncing repository: ([\w.-]+)/([\w.-]+)")
_STEP = re.compile(r"^(?:\S+Z )?##\[group\]Run |^\$ |^The command \"", re.M)
_MAVEN = re.compile(r"^(?:\S+Z )?\[(?:ERROR|INFO)\] BUILD FAILURE", re.M)
_GRADLE = re.compile(r"^(?:\S+Z )?FAILURE: Build failed with an exception\.", re.M)
_ANT = re.compile(r"^(?:\S+Z )?BUILD FAILED\s*\n(?:\S+Z )?\S*build\.xml:\d+: ", re.M)
_JVM_MEMORY = re.compile(r"^(?:\S+Z )?.*os::commit_memory\(.*Cannot allocate memory", re.M)
_REACTOR = re.compile(r"^(?:\S+Z )?\[INFO\] Reactor Summary", re.M)
_KILLED = re.compile(r"^(?:\S+Z )?(?:.*line \d+: +\d+ )?Killed\b", re.M)
_TS = r"^(?:\S+Z )?"
# A test runner's own verdict (its last line) and where its report of the failures opens.
_TEST_RUNNERS = [(re.compile(_TS + summary, re.M), re.compile(_TS + section, re.M)) for summary, section in (
    (r"=+ .*\b\d+ (?:failed|errors?)\b.* in [\d.]+ ?s(?:econds)?\b.*=+\s*$", r"=+ (?:FAILURES|ERRORS|short test summary info) =+\s*$|!+ Interrupted: "),
    (r"FAILED \((?:failures|errors)=\d+(?:, (?:failures|errors|skipped)=\d+)*\)\s*$", r"={50,}\s*\n(?:\S+Z )?(?:ERROR|FAIL): "),
    (r"Tests: +\d+ failed", r"Summary of all failing tests|\s*● "),
    (r"\s*\d+ failing\s*$", r"\s*\d+ failing\s*$"),
)]  # fmt: skip
_COLLECTION = re.compile(r"Interrupted: \d+ errors? during collection")
_COLLECTION_KIND = {"ModuleNotFoundError": "import_error", "ImportError": "import_error",
                    "SyntaxError": "syntax_error", "IndentationError": "syntax_error"}  # fmt: skip
_RUNNER_MARK = re.compile(r"##\[\w+\]")  # GitHub Actions' own `##[error]`: not sbt's `[error]`
_JVM = re.compile(r"BUILD FAILURE|FAILURE: Build failed")
_SKIP = re.compile(r"[-_](?:repr|modified|latest)\b|reproduce_tmp|/passed/")


def label_build(chunk: str) -> tuple[str, str]:
    if _KILLED.search(chunk):
        return "out_of_memory", "the kernel killed the build or its forked JVM (SIGKILL: 'Killed'), as at the memory limit"
    label, reason = cp.label_of(chunk)
    if label in _FIRST:
        return label, reason
    flat = re.sub(r"\s+", " ", cp.normal(chunk))
    if _COLLECTION.search(flat):  # pytest stopped before running: its first `E   <Error>` says why
        first = re.search(r"^(?:\S+Z )?E\s+(\w+)(?::|$)", chunk, re.M)
        kind = _COLLECTION_KIND.get(first.group(1) if first else "", "unknown")
        return kind, f"pytest could not collect the tests: {first.group(1) if first else 'no reason shown'}"
    if label == "import_error" and not _JVM.search(flat):
        return label, reason  # a test module that could not be imported (unittest, nose)
    if _ANT.search(chunk):  # Ant names the target that failed, or just `exec returned: 1`
        for rule_label, rx, rule_reason in _BUILD_RULES:
            if rx.search(flat):
                return rule_label, rule_reason
        return "unknown", "Ant's BUILD FAILED names no kind of failure"
    if "Test suite failed to run" in flat:
        return label, reason  # jest did not run a suite (it did not parse or import): why is the generic rules'

    for rule_label, rx, rule_reason in _BUILD_RULES:
        if rx.search(flat):
            if rule_label == "compile_error" and label in _REFINE:
                return label, reason
            return rule_label, rule_reason
    return label, reason


def marked_span(log: str) -> tuple[int, int, str] | None:
    """(start, end, runner) of the chunk the runner and the build tool point at, or None."""
    gha = _GHA_FAIL.search(log)
    travis = _TRAVIS_FAIL.search(log)
    if gha is None and (travis is None or _TRAVIS_PASS.search(log)):
        return None
    end_match = gha or travis
    assert end_match is not None
    end = end_match.end()
    steps = [m.start() for m in _STEP.finditer(log, 0, end_match.start())]
    step = steps[-1] if steps else 0
    if travis is not None and gha is None:  # the `$ cmd` line opens the step, not the command's echo
        dollars = [m.start() for m in re.finditer(r"^\$ ", log[: end_match.start()], re.M)]
        step = dollars[-1] if dollars else step
    for summary in (_MAVEN, _GRADLE):
        found = [m.start() for m in summary.finditer(log, step, end)]
        if found:
            # Maven's module table and what printed into it ('Killed') belong to the summary.
            near = max(step, found[-1] - 4_000)
            reactor = [m.start() for m in _REACTOR.finditer(log, near, found[-1])]
            killed = [m.start() for m in _KILLED.finditer(log, near, found[-1])]
            return min(killed[-1:] + reactor[-1:] + found[-1:]), end, "gha" if gha else "travis"
    for summary, section in _TEST_RUNNERS:
        found = [m.start() for m in summary.finditer(log, step, end)]
        if found:
            near = max(step, found[-1] - 8_000)
            opened = [m.start() for m in section.finditer(log, near, found[-1])]
            return min(opened[:1] + found[-1:]), end, "gha" if gha else "travis"
    for summary in (_JVM_MEMORY, _ANT):
        found = [m.start() for m in summary.finditer(log, step, end)]
        if found:
            return found[-1], end, "gha" if gha else "travis"
    if re.search(r"exit(?:ed)? (?:with |code )137\b", end_match.group(0)):  # SIGKILL: the step alone
        return log.rfind("\n", step, end_match.start()) + 1, end, "gha" if gha else "travis"
    if re.search(r"exit(?:ed)? (?:with |code )127\b", end_match.group(0)):  # the shell's: not found
        lines = [m.start() for m in re.finditer(r"^.*(?:command not found|: not found)$", log[step:end], re.M)]
        if lines:
            return step + lines[-1], end, "gha" if gha else "travis"
    return None  # no summary of the build tool's own: nothing says why, so no label


def language(log: str) -> str:
    found = re.search(r"^Build language: (\w+)", log, re.M)
    return found.group(1) if found else "unknown"


def repository(log: str) -> str | None:
    found = _GHA_REPO.search(log) or _TRAVIS_REPO.search(log)
    return f"{found.group(1)}@{found.group(2)}" if found else None


def signature(chunk: str) -> str:
    """The chunk's first error lines without times and numbers: the same failure, rerun."""
    lines = [re.sub(r"^\S+Z |\d+", "", line) for line in chunk.split("\n")
             if re.search(r"error|fail|exception", line, re.I)]  # fmt: skip
    return "\n".join(lines[:3])


def bugswarm_entries(mirror: Path) -> list[dict[str, str]]:
    commit = cp.git(mirror, "rev-parse", "HEAD").decode().strip()
    listing = cp.git(mirror, "ls-tree", "-r", "HEAD").decode().split("\n")
    seen_blobs: set[str] = set()
    seen_chunks: set[tuple[str, str, str]] = set()
    seen_builds: set[tuple[str, str]] = set()
    per_repo: dict[str, int] = {}
    entries = []
    for row in sorted(listing):
        if not row.endswith(".log") or "\t" not in row:
            continue
        meta, name = row.split("\t", 1)
        blob = meta.split()[2]
        if _SKIP.search(name) or blob in seen_blobs:
            continue
        seen_blobs.add(blob)
        try:
            raw = cp.git(mirror, "cat-file", "blob", blob)
        except subprocess.CalledProcessError:
            continue  # a file the snapshot lacks (4 MiB and more)
        log = cp.normal(raw.decode("utf-8", "replace"))
        span = marked_span(log)
        repo = repository(log)
        if span is None or repo is None:
            continue
        start, end, runner = span
        marked = log[start:end]
        label, reason = label_build(marked)
        if label == "unknown":
            continue  # the located step does not show why it failed: no one marked a reason
        group = repo.lower()
        build = re.sub(r"\.\d+$", "", Path(name).stem)  # <commit>-<build>.<job>: one job a build
        if (group, build) in seen_builds or (group, label, signature(marked)) in seen_chunks:
            continue
        if per_repo.get(group, 0) >= PER_REPO:
            continue
        seen_builds.add((group, build))
        seen_chunks.add((group, label, signature(marked)))
        per_repo[group] = per_repo.get(group, 0) + 1
        stem = re.sub(r"\W+", "-", Path(name).stem).strip("-")
        entries.append({
            "id": f"bugswarm/{repo}/{stem}",
            "label": label,
            "log": cp.excerpt(log, start, end),
            "tool": cp.tool_of(_RUNNER_MARK.sub("", marked), language(log) if runner == "travis" else ""),
            "source": f"https://github.com/{BUGSWARM}/blob/{commit}/{urllib.parse.quote(name)}",
            "reason": reason,
            "group": group,
        })  # fmt: skip
    return entries
