"""The TravisTorrent reader of `collect_public.py`: Travis CI logs its analysers keep as fixtures.

`TestRoots/travistorrent-tools` (MIT; Beller, Gousios and Zaidman, MSR 2017) keeps the
original logs of Travis CI jobs of Java, Ruby, Python and Go projects under `dev_logs/`,
the inputs of its build-log analysers. As for BugSwarm (`collect_bugswarm.py`, whose
reader this one extends), no person marked a chunk: the chunk is where the runner and
the tool point themselves. First BugSwarm's `marked_span` (Maven, Gradle, Ant, pytest,
unittest, jest, mocha, exit 137/127); then the verdicts of the runners these logs add:

- RSpec's `N examples, M failures`, Cucumber's `N scenarios (M failed`, minitest's
  `N runs, N assertions, M failures`, `go test`'s `FAIL\t<package>`, unittest's
  `FAILED (<kind>=N` (any kind, as Python-Markdown's runner counts its own);
- Travis's own words when it stopped the job: `No output has been received in the last
  Nm`, `The job exceeded the maximum time limit` (the label `timeout`, by the generic
  rules);
- Rake's `rake aborted!` block (what it says is labelled by the generic rules).

A job without one of these is skipped. The group is the repository the job built
(its `git clone` line, `/home/travis/build/<owner>/<name>` or the GOPATH), else the
fixture's folder (`dev_logs/<owner>@<name>/`);
logs of the analysers' own template projects (`/home/mbeller/...`) are skipped.
"""

from __future__ import annotations

import re
import subprocess
import urllib.parse
from pathlib import Path

import collect_bugswarm as cb
import collect_public as cp

TRAVISTORRENT = "TestRoots/travistorrent-tools"
LICENCE = "MIT (TestRoots/travistorrent-tools)"

_TS = r"^"
# (the runner's verdict, where its report of the failures opens), as in collect_bugswarm.
_RUNNERS = [(re.compile(summary, re.M), re.compile(section, re.M)) for summary, section in (
    (r"^\d+ examples?, \d+ failures?\b.*$", r"^Failures:\s*$|^Failed examples:\s*$"),
    (r"^\d+ scenarios? \([^)]*\d+ failed\b.*$", r"^Failing Scenarios:\s*$"),
    (r"^\d+ runs, \d+ assertions, [1-9]\d* failures, \d+ errors.*$|^\d+ runs, \d+ assertions, \d+ failures, [1-9]\d* errors.*$", r"^\s*\d+\) (?:Failure|Error):"),
    (r"^FAIL\t\S+\t[\d.]+s\s*$|^FAIL\s+\S+\s+\[build failed\]\s*$", r"^--- FAIL: |^# \S+\s*$"),
    (r"^FAILED \(\w+=\d+(?:, \w+=\d+)*\)\s*$", r"^={50,}\s*\n(?:ERROR|FAIL): "),
)]  # fmt: skip
_STOPPED = re.compile(
    r"^No output has been received in the last \d+m|"
    r"^The job exceeded the maximum time limit for jobs",
    re.M,
)
_RAKE = re.compile(r"^rake aborted!\s*$", re.M)
_TEST_VERDICT = (
    "test_failure",
    "the test runner reported failing tests (RSpec, Cucumber, minitest, go test or unittest)",
)
_OWN_PROJECT = re.compile(r"/home/mbeller/")


def marked_span(log: str) -> tuple[int, int] | None:
    """(start, end) of the chunk the runner and the tool point at, or None."""
    found = cb.marked_span(log)
    if found is not None:
        return found[0], found[1]
    stopped = _STOPPED.search(log)
    if stopped is not None:  # the runner stopped the job: its own words are the chunk
        end = log.find("\n", stopped.end())
        return stopped.start(), end if end != -1 else len(log)
    fail = cb._TRAVIS_FAIL.search(log)
    if fail is None or cb._TRAVIS_PASS.search(log):
        return None
    steps = [m.start() for m in re.finditer(r"^\$ ", log[: fail.start()], re.M)]
    step = steps[-1] if steps else 0
    for summary, section in _RUNNERS:
        verdicts = [m.start() for m in summary.finditer(log, step, fail.start())]
        if verdicts:
            near = max(step, verdicts[-1] - 8_000)
            opened = [m.start() for m in section.finditer(log, near, verdicts[-1])]
            return min(opened[:1] + verdicts[-1:]), fail.end()
    aborted = [m.start() for m in _RAKE.finditer(log, step, fail.start())]
    if aborted:
        return aborted[-1], fail.end()
    return None


def label(chunk: str) -> tuple[str, str]:
    flat = re.sub(r"\s+", " ", chunk)
    if any(summary.search(chunk) for summary, _ in _RUNNERS) and not _STOPPED.search(chunk):
        generic, reason = cp.label_of(chunk)
        # What the generic rules name first (memory, disk, time, network, access) stands.
        return (generic, reason) if generic in cb._FIRST else _TEST_VERDICT
    if _RAKE.search(chunk) or _STOPPED.search(chunk):
        return cp.label_of(flat)
    return cb.label_build(chunk)


_CLONE = re.compile(r"\$ git clone [^\n]*?https://github\.com/([\w.-]+)/([\w.-]+?)(?:\.git)?[ \n]")
_GOPATH = re.compile(r"/home/travis/gopath/src/github\.com/([\w.-]+)/([\w.-]+)")


def group_of(log: str, name: str) -> str | None:
    found = _CLONE.search(log) or cb._TRAVIS_REPO.search(log) or _GOPATH.search(log)
    if found is not None:
        return f"{found.group(1)}@{found.group(2)}".lower()
    folder = name.split("/")[1] if name.count("/") >= 2 else ""
    return folder.lower() if "@" in folder else None


def tool_of(chunk: str, log: str) -> str:
    language = cb.language(log)
    tool = cp.tool_of(chunk, "" if language == "unknown" else language)
    return "travis" if tool == "github-actions" else tool  # these are all Travis jobs


def travistorrent_entries(mirror: Path) -> list[dict[str, str]]:
    commit = cp.git(mirror, "rev-parse", "HEAD").decode().strip()
    listing = cp.git(mirror, "ls-tree", "-r", "HEAD", "dev_logs").decode().split("\n")
    seen: set[str] = set()
    per_repo: dict[str, int] = {}
    entries = []
    for row in sorted(listing):
        if not row.endswith(".log") or "\t" not in row:
            continue
        meta, name = row.split("\t", 1)
        blob = meta.split()[2]
        if blob in seen:
            continue
        seen.add(blob)
        try:
            raw = cp.git(mirror, "cat-file", "blob", blob)
        except subprocess.CalledProcessError:
            continue
        log = cp.normal(raw.decode("utf-8", "replace"))
        span = marked_span(log)
        group = group_of(log, name)
        if span is None or group is None or _OWN_PROJECT.search(log):
            continue
        start, end = span
        chunk = log[start:end]
        klass, reason = label(chunk)
        if klass == "unknown":
            continue  # the chunk does not say why: nobody marked a reason
        key = (group, klass, cb.signature(chunk))
        if str(key) in seen or per_repo.get(group, 0) >= cb.PER_REPO:
            continue
        seen.add(str(key))
        per_repo[group] = per_repo.get(group, 0) + 1
        stem = re.sub(r"\W+", "-", Path(name).stem).strip("-")
        entries.append({
            "id": f"travistorrent/{group}/{stem}",
            "label": klass,
            "log": cp.excerpt(log, start, end),
            "tool": tool_of(chunk, log),
            "source": f"https://github.com/{TRAVISTORRENT}/blob/{commit}/{urllib.parse.quote(name)}",
            "licence": LICENCE,
            "reason": reason,
            "group": group,
        })  # fmt: skip
    return entries
