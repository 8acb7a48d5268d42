"""Build the public failure corpus (`public/train.jsonl`, `public/test.jsonl`) from real CI logs.

    .venv/bin/python tests/golden/failures/collect_public.py MIRROR_DIR
    .venv/bin/python tests/golden/failures/collect_public.py --threads-only

MIRROR_DIR holds bare clones (as `git clone --mirror` makes them) of the public
repositories the logs are copied from (`<owner>+<name>/repo`); a source whose clone is
absent keeps the entries already copied from it, so one source can be re-read alone:

- `lacinoire/master-thesis` (the LogChunks data set, Brandt et al., MSR 2020): ~800
  Travis CI logs of 80 repositories, and for each log the chunk a person marked as the
  reason the build failed (`tool/example-sets/BuildFailureReason/**.xml`);
- `labri-progress/cidiff` (Apache-2.0): GitHub Actions logs with the line ranges a
  person marked as the error (`data/**/fail.log` + `groundtruth`);
- `BugSwarm/bugswarm` (BSD-3-Clause): original logs of failed Travis CI and GitHub
  Actions jobs of Java projects (Maven, Gradle) kept as its analysers' fixtures; the
  chunk is the build tool's own failure summary (see `collect_bugswarm.py`);
- `TestRoots/travistorrent-tools` (MIT): original Travis CI logs of Java, Ruby, Python
  and Go jobs its build-log analysers keep as fixtures (`dev_logs/`); the chunk is the
  runner's or the test tool's own verdict (see `collect_travistorrent.py`);
- `threads/*.jsonl`: log blocks pasted in public GitHub issue/PR threads, each with its
  thread URL (the kernel's OOM killer and JVM heap exhaustion, which CI fixtures lack).

Nothing here writes log text: each entry's `log` is a contiguous excerpt of the real log
(the marked chunk and the lines around it, line-aligned, at most `MAX_LOG` characters),
with registry host names redacted. The *label* is ours: `label_of` maps the marked
chunk to a KARMA failure class by the ordered rules below, each with the one-line reason
stored with the entry. The split is by source repository (no repository is in both),
chosen by a hash of its name, so nothing is tuned on the test split.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
import subprocess
import sys
import urllib.parse
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "public"
MAX_LOG = 6_000
BEFORE, AFTER = 1_800, 1_000
TEST_BELOW = "50"  # sha256 hex prefix: about 31% of repositories

THESIS = "lacinoire/master-thesis"
CIDIFF = "labri-progress/cidiff"

# Ordered: the first rule whose regex finds the marked chunk gives the label.
RULES: tuple[tuple[str, str, str], ...] = (
    ("out_of_memory", r"Killed signal terminated|OutOfMemoryError|Out of memory|Cannot allocate memory|std::bad_alloc|exit(?:ed)? (?:with |code )?137\b|oom-kill", "the process ran out of memory or was OOM-killed"),
    ("disk_full", r"No space left on device|ENOSPC|disk quota exceeded", "the disk filled up"),
    ("timeout", r"exited with 124|No output has been received in the last|exceeded the maximum time|The job exceeded|Tests timed out|process timed out|Timeout exceeded", "the runner or harness stopped the step for taking too long"),
    # A test that fails by timing out is a test failure (and a flakiness signal), not a step timeout.
    ("test_failure", r"timetrap_timeout|timeout of \d+ ?ms exceeded|TimeoutException|timed out|Disconnected, because no message in|ping timeout", "a test failed by timing out (timing-dependent: a flakiness signal)"),
    ("permission_denied", r"unsafe repository|Permission denied|EACCES|must be owner of|Access denied|Operation not permitted|Access key cannot be null|403 Forbidden|not authorized|Unauthorized|authentication required", "access was refused (file mode, credentials or database role)"),
    ("network_error", r"Couldn't establish HTTP connection|Could not create connection|Failed to open TCP connection|Connection refused|Connection reset|Could not resolve host|unable to access '[^']*': (?!The requested URL returned error: 404)|Empty reply from server|ECONNRESET|ETIMEDOUT|EAI_AGAIN|getaddrinfo|certificate subject alternative name|SSL|Temporary failure in name resolution|Network is unreachable|Failed to connect|Read timed out|Could not transfer artifact", "a network transfer failed"),
    ("missing_tool", r"CommandNotFoundException|is not recognized as the name of|No such file or directory: '|command not found|is currently not installed|executable file not found|: not found$|No such file or directory\s*$|error while loading shared libraries|Could NOT find \w+|Unable to find the requested Boost|Unable to find image|No rule to make target|No Rakefile found|Task never defined|is not recognized as an internal or external command", "a program, script, library or build file the step needs is absent"),
    ("dependency_resolution", r"Package required but not available|The requested package .* exists as|Installation failed|PackagesNotFoundError|unresolved dependency|Could not find artifact|Could not resolve dependencies|No version of .* is available|is unavailable|ERESOLVE|version solving failed|No matching distribution|Could not find a version|failed to select a version|CocoaPods could not find|manifest for .* not found|dependency conflict|Conflicting dependencies|requires .* which is incompatible|could not find any version|Unable to resolve dependency|cannot satisfy|dotnet restore|error installing|An error occured while installing|failed to fetch dependencies|Could not find .* in any of the sources|incompatible with the version", "the dependency set could not be resolved or installed"),
    ("import_error", r"Cannot find module|ModuleNotFoundError|ImportError|No module named|Failed to load interface|cannot find package|unresolved import|is not a member of package|Cannot find name '(?:describe|it|expect)'|package .* does not exist|LoadError|cannot load such file|Could not find module", "a module or package could not be imported"),
    ("syntax_error", r"SyntaxError|Parse error|parse error|ParseError|Unexpected token|unexpected identifier|Invalid CSS after|cannot start any token|did not find expected|Illegal nesting|Inconsistent indentation|CssSyntaxError|expected but .* found|' expected|syntax error|Unknown word", "the source does not parse"),
    ("lint_error", r"JavaScript Standard Style|Offenses:|\b[CW]: (?:Style|Performance|Layout|Lint)/|:\d+:\d+: [EW]\d{3} |Violation:|\(Severity: \d\)|Undocumented|Please rebuild|not up-to-date\. Run 'go mod tidy'|go mod tidy|check_integrity|is required for bin/|Line does not match format|Words not in order|Duplicate links|no-missing-eof-newline|Invalid or upper case character|API changes:|broken links|is deprecated at|prettier|eslint|Code style issues|no-extra-semi|\bMD\d{3}/|TLDR\d{3}|Line longer than|gofmt|goimports|gometalinter|check-formatted|not formatted|rubocop|offenses?\b|stylelint|✖|include guard|lint|Unused import|is unused|redundant|Warning:|\[-W|-Werror|warning treated as error|indent_char|Replace `|Insert `|Strings must use|locale dependent|> Links|is not being used|trailing whitespace|whitespace|Overfull|Variable .* is not being used|diff --git|clang-format|black would|flake8|pylint|Please commit all changes|checkstyle|spotless|ktlint|scalafmt|mima|does not have a correspondent|type hierarchy of", "a linter, formatter or consistency check rejected the change"),
    ("type_error", r"error TS\d+|Couldn't match|Could not match type|mismatched types|error\[E0308\]|incompatible types|is not assignable|type mismatch|Argument of type|cannot be applied to|found\s*:.*required|thrown expression type|is inaccessible due to|TSError|no implicit conversion|wrong type", "a type checker or compiler rejected the types"),
    ("test_failure", r"panicked at 'assertion|^\s*Failure: |^\s*Error: [\w:]+#test|Running the tests in .* failed|Expected and actual values differ|Expected no exception|^\[-\] |_{5,} (?:ERROR collecting |test_)|Asynchronous wait failed|^✗ |=>\S+ ERROR|OK, but incomplete, skipped, or risky|\bFAIL\b|FAILED|AssertionError|Assertion with|Assert\.\w+\(\) Failure|Failed asserting|expected:? ?<|but was|XCTAssert|equal to|[Tt]ests? (?:un)?(?:failed|successful)|Dubious, test returned|<<< (?:FAILURE|ERROR)|not ok|notOk|failed on line|md5sum did not match|AddressSanitizer|TestsFailedException|Found errors in|did not equal|was not greater|Expected .* (?:but )?got|Expected exception|\d+\) |Test suite failed|Non-matching|Unexpected exception caught during testing|JSONRPC error|Package size limit|expected to eventually|Error: Process exited|Unit tests failed|errors, listed below|--- \S+\s+\+\+\+", "tests ran and some failed"),
    ("compile_error", r"bad class file|UnsupportedClassVersionError|Undefined reference:|unknown attribute|Error found: in module|Undefined variable:|\berror\b|error\[E\d+\]|undefined reference|CompileError|cannot find symbol|compilation failed|does not exist in the current context|error CS\d+|is not a member of|undefined function|is unbound|Build input file cannot be found|build failed|not in scope", "the compiler rejected the code"),
)
_RULES = [(label, re.compile(rx, re.MULTILINE), reason) for label, rx, reason in RULES]

# Registry hosts: named ones and any host whose name says it is a package registry/mirror.
_REGISTRY = re.compile(
    r"\b(?:registry\.npmjs\.org|registry\.yarnpkg\.com|pypi\.org|pypi\.python\.org|"
    r"files\.pythonhosted\.org|repo1\.maven\.org|repo\.maven\.apache\.org|jcenter\.bintray\.com|"
    r"plugins\.gradle\.org|services\.gradle\.org|crates\.io|static\.crates\.io|index\.crates\.io|"
    r"proxy\.golang\.org|sum\.golang\.org|rubygems\.org|api\.nuget\.org|repo\.anaconda\.com|"
    r"conda\.anaconda\.org|registry-1\.docker\.io|index\.docker\.io|ghcr\.io|quay\.io|"
    r"elpa\.gnu\.org|melpa\.org|hackage\.haskell\.org|repo\.hex\.pm|packagist\.org|"
    r"cdn\.cocoapods\.org|[\w.-]*(?:registry|artifactory|nexus|mirror)[\w-]*(?:\.[\w-]+)+)\b"
)
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")


# Entries the rules get wrong, read by hand.
_QUOTED_SOURCE = ("compile_error", "rustc rejects a trait method; 'Out of memory' is only quoted source")
# Read by hand while auditing the weak rules (the catch-all `\berror\b` and `N) `) on
# both splits, entry by entry, without looking at any classifier's answer: each reason
# says why the rule's label was wrong.
_DEPLOY = ("unknown", "relabelled: a deploy tool failed (firebase), not a compiler")
_S3_DEPLOY = ("unknown", "relabelled: the s3_website deploy tool crashed in JRuby's start-up; no test ran")
_HTMLPROOFER = ("lint_error", "relabelled: html-proofer found broken internal/external links (a docs check)")
_CONNECT_TIMEOUT = ("network_error", "relabelled: the test could not connect (Connect timeout): a network failure, not a compiler")
_PKG_404 = ("dependency_resolution", "relabelled: a prebuilt package's signature was 404 on the package server: the dependency could not be installed")
_DOC_REFS = ("lint_error", "relabelled: Hugo's REF_NOT_FOUND: docs link to pages that do not exist (a broken-links check)")
_DOC_FORMAT = ("lint_error", "relabelled: the docs format check rejected a README.org (no 'Features:' list)")
_FATAL_DEPRECATION = ("lint_error", "relabelled: a deprecation warning made fatal (scalac -Xfatal-warnings), a warning treated as error")
OVERRIDES: dict[str, tuple[str, str]] = {
    "logchunks/redox-os@redox/371852012": _QUOTED_SOURCE,
    "logchunks/redox-os@redox/372586589": _QUOTED_SOURCE,
    **dict.fromkeys([f"logchunks/angular@angular/{n}" for n in (502325280, 502325876)], _DEPLOY),
    **dict.fromkeys([f"logchunks/iluwatar@java-design-patterns/{n}"
                     for n in (564609653, 564623643, 564633185, 565118220)], _S3_DEPLOY),
    **dict.fromkeys([f"logchunks/iluwatar@java-design-patterns/{n}" for n in (565304449, 565659321)],
                    _HTMLPROOFER),
    **dict.fromkeys([f"logchunks/sjdy521@Mojo-Webqq/{n}" for n in (
        332708478, 341246416, 345524470, 347585795, 367594701, 367594706, 368688524, 369927984,
        369957693, 373752512)], _CONNECT_TIMEOUT),
    **dict.fromkeys([f"logchunks/redox-os@redox/{n}" for n in (
        357884038, 360624245, 360652670, 387092985, 387097216, 387097804, 387174339)], _PKG_404),
    **dict.fromkeys([f"logchunks/twbs@bootstrap/{n}" for n in (566522647, 566876747)], _DOC_REFS),
    **dict.fromkeys([f"logchunks/syl20bnr@spacemacs/{n}" for n in (407365973, 407363615)], _DOC_FORMAT),
    **dict.fromkeys([f"logchunks/akka@akka/{n}" for n in (565243172, 562556292)], _FATAL_DEPRECATION),
    **dict.fromkeys([f"logchunks/airbnb@javascript/{n}" for n in (
        543923279, 563268407, 563272067, 563282619, 563286141)],
        ("test_failure", "relabelled: the tape tests of eslint-config-airbnb failed (operator: notOk); 'eslint' is only in the path")),
    **dict.fromkeys([f"logchunks/jashkenas@coffeescript/{n}" for n in (460615864, 429651194, 461415014)],
                    ("test_failure", "relabelled: CoffeeScript's own tests failed (AssertionError/ReferenceError in a test); 'Warning:' is incidental")),
    "logchunks/jashkenas@coffeescript/507400442": ("syntax_error", "relabelled: the test file does not parse (error: unmatched OUTDENT); 'Warning:' is incidental"),
    "logchunks/php@php-src/531062743": ("test_failure", "relabelled: a .phpt test failed (FAIL recvmsg(): basic test); 'Warning:' is the test's output diff"),
    "logchunks/composer@composer/566982103": ("lint_error", "relabelled: PHPStan (static analysis) rejected its own ignore list, not a compiler"),
    "logchunks/tldr-pages@tldr/564868148": ("lint_error", "relabelled: markdownlint rules (MD005/MD006/MD007) rejected the page; it parses"),
    "cidiff/breakages_dump-Build-Terraform-CLI-Packages_-run407": ("network_error", "relabelled: a Go module download failed (connection reset by peer)"),
    "cidiff/breakages_dump-Build-Terraform-CLI-Packages_-run452": ("network_error", "relabelled: a Go module download failed (connection reset by peer)"),
    "cidiff/breakages-astor_1278": ("unknown", "relabelled: Jenkins lost its build agent (hudson.remoting.Channel closed); no test ran"),
    "cidiff/breakages-disklrucache_2210": ("compile_error", "relabelled: UnsupportedClassVersionError (a class built for a newer JVM), as the compile rule says; no test ran"),
}


def label_of(chunk: str) -> tuple[str, str]:
    text = _ANSI.sub("", chunk)
    flat = re.sub(r"\s+", " ", text)  # messages a tool wrapped over lines
    for label, rx, reason in _RULES:
        if rx.search(text) or rx.search(flat):
            return label, reason
    return "unknown", "no KARMA class fits this failure (CI configuration, deploy or content)"


TOOLS = (
    ("gradle", r"\bgradle|Gradle|> Task :"), ("maven", r"\[INFO\]|\[ERROR\]|mvn |maven"),
    ("sbt", r"\[info\]|\[error\]|sbt\."), ("cargo", r"cargo |error\[E\d+\]|\.rs:\d+"),
    ("go", r"\bgo (?:test|build|vet)|\.go:\d+|--- FAIL"), ("pytest", r"pytest|_{5,} test_"),
    ("python", r"Traceback|\.py\"?, line"), ("jest", r"\bjest\b|● "),
    ("mocha", r"\d+\) .*:|mocha|karma"), ("npm", r"npm (?:ERR|WARN)|\bnpm\b|yarn"),
    ("tsc", r"error TS\d+"), ("eslint", r"eslint|prettier"), ("cmake", r"CMake"),
    ("make", r"make(?:\[\d+\])?: \*\*\*"), ("gcc", r"\.(?:c|cc|cpp|h):\d+:\d+: error"),
    ("docker", r"docker|Dockerfile|buildkit"), ("xcodebuild", r"xcodebuild|❌|XCTAssert"),
    ("dotnet", r"dotnet|\.cs\(\d+"), ("mix", r"\(Mix\)|\.exs:\d+"), ("stack", r"\.hs:\d+"),
    ("rake", r"rake|Rakefile"), ("phpunit", r"Failed asserting"),
)  # fmt: skip
_TOOLS = [(name, re.compile(rx, re.MULTILINE)) for name, rx in TOOLS]


def tool_of(text: str, language: str) -> str:
    for name, rx in _TOOLS:
        if rx.search(text):
            return name
    return f"travis:{language.lower()}" if language else "github-actions"


def git(mirror: Path, *args: str) -> bytes:
    return subprocess.run(["git", "-C", str(mirror), *args], capture_output=True, check=True).stdout


def excerpt(log: str, start: int, end: int) -> str:
    """The marked span and the lines around it, line-aligned, bounded."""
    begin = log.rfind("\n", 0, max(start - BEFORE, 0)) + 1 if start > BEFORE else 0
    stop = log.find("\n", min(end + AFTER, len(log)))
    text = log[begin : stop if stop != -1 else len(log)]
    if len(text) > MAX_LOG:  # keep the marked span: trim the context, never the chunk
        keep = max(MAX_LOG - (end - start), 0)
        lead = min(start - begin, keep * 2 // 3)
        text = log[start - lead : min(end + keep - lead, len(log))]
        text = text[:MAX_LOG] if end - start > MAX_LOG else text
    return _REGISTRY.sub("<registry>", text)


def normal(text: str) -> str:
    return _ANSI.sub("", text).replace("\r\n", "\n").replace("\r", "\n")


def thesis_entries(mirror: Path) -> list[dict[str, str]]:
    commit = git(mirror, "rev-parse", "HEAD").decode().strip()
    files = git(mirror, "ls-tree", "-r", "--name-only", "HEAD", "tool/example-sets/BuildFailureReason")
    found = re.compile(r"<ExampleDataOfString>(.*?)</ExampleDataOfString>", re.S)
    entries = []
    for name in files.decode().split("\n"):
        if not name:
            continue
        xml = git(mirror, "show", f"HEAD:{name}").decode("utf-8", "replace")
        for example in found.findall(xml):
            path = html.unescape(re.search(r"<InputPath>(.*?)</InputPath>", example, re.S).group(1))
            chunk = re.search(r"<Output>(.*?)</Output>", example, re.S)
            if chunk is None or not chunk.group(1).strip():
                continue
            marked = normal(html.unescape(chunk.group(1))).strip()
            log = normal(git(mirror, "show", f"HEAD:tool/samples/{path}").decode("utf-8", "replace"))
            start = log.find(marked)
            if start < 0:
                continue  # the marked chunk is not verbatim in the log: not a copy, skip it
            language, repo = path.split("/")[0], path.split("/")[1]
            key = f"logchunks/{repo}/{Path(path).stem}"
            label, reason = OVERRIDES.get(key) or label_of(marked)
            entries.append({
                "id": key,
                "label": label,
                "log": excerpt(log, start, start + len(marked)),
                "tool": tool_of(marked, language),
                "source": f"https://github.com/{THESIS}/blob/{commit}/"
                + urllib.parse.quote(f"tool/samples/{path}"),
                "reason": reason,
                "group": repo.lower(),
            })  # fmt: skip
    return entries


def cidiff_entries(mirror: Path) -> list[dict[str, str]]:
    commit = git(mirror, "rev-parse", "HEAD").decode().strip()
    names = git(mirror, "ls-tree", "-r", "--name-only", "HEAD", "data").decode().split("\n")
    entries = []
    for name in names:
        if not name.endswith("/fail.log"):
            continue
        folder = name.rsplit("/", 1)[0]
        try:
            truth = git(mirror, "show", f"HEAD:{folder}/groundtruth").decode()
        except subprocess.CalledProcessError:
            continue
        spans = [tuple(int(n) for n in m.groups(default=m.group(1)))
                 for m in re.finditer(r"^E (\d+)(?:-(\d+))?", truth, re.M)]  # fmt: skip
        if not spans:
            continue
        lines = normal(git(mirror, "show", f"HEAD:{name}").decode("utf-8", "replace")).split("\n")
        first, last = spans[0][0], spans[0][-1]
        marked = "\n".join(lines[first - 1 : last])
        if not marked.strip():
            continue
        log = "\n".join(lines)
        start = sum(len(line) + 1 for line in lines[: first - 1])
        parent, case = folder.split("/")[-2:]
        # data/breakages/<project>_<run>; elsewhere one folder holds one workflow's runs.
        group = re.sub(r"_\d+$", "", case) if parent == "breakages" else parent
        key = "cidiff/" + re.sub(r"\W+", "-", folder.removeprefix("data/")).strip("-")
        label, reason = OVERRIDES.get(key) or label_of(marked)
        entries.append({
            "id": key,
            "label": label,
            "log": excerpt(log, start, start + len(marked)),
            "tool": tool_of(marked, ""),
            "source": f"https://github.com/{CIDIFF}/blob/{commit}/{urllib.parse.quote(name)}",
            "reason": reason,
            "group": group.lower(),
        })  # fmt: skip
    return entries


def thread_entries() -> list[dict[str, str]]:
    """Excerpts of logs pasted in public issue and pull-request threads (`threads/*.jsonl`).

    Copied from the thread at `source` (the log block only, never the prose around it),
    for the classes CI fixtures rarely hold (the kernel's OOM killer, JVM heap).
    """
    entries = []
    for path in sorted((HERE / "threads").glob("*.jsonl")):
        for line in path.read_text().splitlines():
            row = json.loads(line)
            slug = re.sub(r"\W+", "-", row["source"].split("github.com/")[1]).strip("-")
            entries.append({"id": f"thread/{slug}", "label": row["label"],
                            "log": _REGISTRY.sub("<registry>", row["log"]), "tool": row["tool"],
                            "source": row["source"], "reason": row["reason"],
                            "group": row["group"]})  # fmt: skip
    return entries


def split(entries: list[dict[str, str]]) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """By source repository: test holds the repositories whose name hashes below `TEST_BELOW`.

    A fixed cut (it gave 33% of the first 871 entries) keeps every repository where it
    was when more are added, so nothing moves from train (seen while writing patterns)
    to test.
    """
    def in_test(group: str) -> bool:
        return hashlib.sha256(group.encode()).hexdigest() < TEST_BELOW

    train = [e for e in entries if not in_test(e["group"])]
    test = [e for e in entries if in_test(e["group"])]
    return train, test


def mirror_sources() -> list[tuple[str, str, Callable[[Path], list[dict[str, str]]]]]:
    """(id prefix, mirror folder, reader) of each mirrored source."""
    from collect_bugswarm import bugswarm_entries  # their readers import this module's helpers
    from collect_travistorrent import travistorrent_entries

    return [
        ("logchunks/", "lacinoire+master-thesis", thesis_entries),
        ("cidiff/", "labri-progress+cidiff", cidiff_entries),
        ("bugswarm/", "BugSwarm+bugswarm", bugswarm_entries),
        ("travistorrent/", "TestRoots+travistorrent-tools", travistorrent_entries),
    ]


def main() -> int:
    kept = [json.loads(line) for name in ("train", "test") if (OUT / f"{name}.jsonl").is_file()
            for line in (OUT / f"{name}.jsonl").open()]  # fmt: skip
    entries = []
    mirror_dir = None if sys.argv[1] == "--threads-only" else Path(sys.argv[1])
    for prefix, folder, reader in mirror_sources():
        mirror = None if mirror_dir is None else mirror_dir / folder / "repo"
        if mirror is not None and mirror.is_dir():
            entries += reader(mirror)
        else:  # without its mirror a source keeps the entries already copied from it
            entries += [e for e in kept if e["id"].startswith(prefix)]
    entries += thread_entries()
    train, test = split(entries)
    OUT.mkdir(exist_ok=True)
    for name, rows in (("train", train), ("test", test)):
        with (OUT / f"{name}.jsonl").open("w") as handle:
            for row in sorted(rows, key=lambda r: r["id"]):
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"{len(entries)} entries: {len(train)} train, {len(test)} test")
    return 0


if __name__ == "__main__":
    sys.exit(main())
