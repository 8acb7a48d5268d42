"""The agent's tools: every path the model names stays inside the worktree."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from karma import confine
from karma import tools as tools_module
from karma.footprint import Footprint
from karma.sandbox.interface import ExecResult
from karma.tools import TOOLS, Toolbox


class CannedRunner:
    """A command runner with a canned result (the real one is a Docker sandbox)."""

    def __init__(self, result: ExecResult) -> None:
        self.result = result
        self.commands: list[str] = []

    def __call__(self, command: str, time_left: float) -> ExecResult:
        self.commands.append(command)
        return self.result


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "wt"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "a.py").write_text("x = 1\ny = 1\n")
    (root / ".git").write_text("gitdir: /somewhere\n")
    (tmp_path / "outside.txt").write_text("secret\n")
    return root


def box(root: Path, output: str = "ok", exit_code: int = 0) -> Toolbox:
    return Toolbox(root, CannedRunner(ExecResult("c", exit_code, output, 0.1)), output_chars=1000)


def test_tool_names_are_the_contract() -> None:
    assert [t.name for t in TOOLS] == [
        "read_file",
        "list_files",
        "search_code",
        "write_file",
        "edit_file",
        "run",
        "finish",
    ]
    search = next(t for t in TOOLS if t.name == "search_code")
    assert search.input_schema["required"] == ["pattern"]


@pytest.mark.parametrize(
    "path",
    [
        "/etc/passwd",
        "../outside.txt",
        "pkg/../../outside.txt",
        ".git/config",
        ".git",
        "pkg/.git/x",
        "~/x",
        "",
    ],
)
def test_paths_outside_are_refused_and_nothing_is_written(root: Path, path: str) -> None:
    tools = box(root)
    result = tools.call("write_file", {"path": path, "content": "pwned"})
    assert result.is_error
    assert (root.parent / "outside.txt").read_text() == "secret\n"
    assert (root / ".git").read_text() == "gitdir: /somewhere\n"
    assert tools.call("read_file", {"path": path}).is_error


def test_symlink_leading_out_is_refused(root: Path) -> None:
    os.symlink(root.parent, root / "escape")
    os.symlink(root.parent / "outside.txt", root / "link.txt")
    tools = box(root)
    assert tools.call("write_file", {"path": "escape/outside.txt", "content": "x"}).is_error
    assert tools.call("write_file", {"path": "link.txt", "content": "x"}).is_error
    assert tools.call("read_file", {"path": "link.txt"}).is_error
    assert (root.parent / "outside.txt").read_text() == "secret\n"


def test_write_read_list_search(root: Path) -> None:
    tools = box(root)
    assert not tools.call(
        "write_file", {"path": "new/b.py", "content": "def f():\n    pass\n"}
    ).is_error
    assert tools.call("read_file", {"path": "new/b.py"}).content.startswith("def f")
    listing = tools.call("list_files", {"path": "."}).content.splitlines()
    assert "new/b.py" in listing and "pkg/a.py" in listing and ".git" not in listing
    hits = tools.call("search_code", {"pattern": r"def \w+"}).content
    assert hits == "new/b.py:1: def f():"
    assert tools.written == {"new/b.py"}


def test_edit_must_match_exactly_once(root: Path) -> None:
    tools = box(root)
    several = tools.call("edit_file", {"path": "pkg/a.py", "old": "= 1", "new": "= 2"})
    assert several.is_error and "2 times" in several.content
    missing = tools.call("edit_file", {"path": "pkg/a.py", "old": "zzz", "new": "q"})
    assert missing.is_error and "does not occur" in missing.content
    assert (root / "pkg" / "a.py").read_text() == "x = 1\ny = 1\n"
    ok = tools.call("edit_file", {"path": "pkg/a.py", "old": "x = 1", "new": "x = 3"})
    assert not ok.is_error
    assert (root / "pkg" / "a.py").read_text() == "x = 3\ny = 1\n"


def test_run_output_is_tail_truncated_with_a_note(root: Path) -> None:
    tools = box(root, output="A" * 5000 + "THE END", exit_code=1)
    result = tools.call("run", {"command": "make"})
    assert result.is_error
    assert result.content.startswith("exit code 1")
    assert "truncated" in result.content and result.content.endswith("THE END")
    assert len(result.content) < 1200


def test_huge_write_is_refused(root: Path) -> None:
    result = box(root).call("write_file", {"path": "big.txt", "content": "x" * 2_000_000})
    assert result.is_error and not (root / "big.txt").exists()


def test_unknown_tool_and_bad_arguments(root: Path) -> None:
    tools = box(root)
    assert tools.call("rm_rf", {}).is_error
    assert tools.call("read_file", {"file": "x"}).is_error
    assert tools.call("finish", {"summary": "done"}).finished == "done"


# -- races: a process left by `run` swaps a directory for a symlink while the tools work ----


SECRET = "TOPSECRET-7f3a"
ITERATIONS = 2000


@pytest.fixture(params=["openat2", "walk"])
def implementation(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "walk":
        monkeypatch.setattr(confine, "_OPENAT2", False)
    return str(request.param)


SWAP = """
import os, shutil, sys
victim, target, stop = sys.argv[1:]
parked = victim + ".real"
swaps = tries = 0
while tries % 64 or not os.path.exists(stop):
    tries += 1
    try:
        os.rename(victim, parked)
        os.symlink(target, victim)
        swaps += 1
        os.unlink(victim)
    except OSError:
        pass
    try:  # whatever a tool made meanwhile (write_file makes missing parents) goes
        if os.path.lexists(parked):
            if os.path.isdir(victim) and not os.path.islink(victim):
                shutil.rmtree(victim)
            elif os.path.lexists(victim):
                os.unlink(victim)
            os.rename(parked, victim)
    except OSError:
        pass
print(swaps)
"""


class Swapper:
    """The attacker, a process of its own: `victim` is a directory, then a symlink to
    `target`, over and over, until the test is done."""

    def __init__(self, victim: Path, target: Path, stop: Path) -> None:
        self.stop = stop
        self.args = [sys.executable, "-c", SWAP, str(victim), str(target), str(stop)]
        self.swaps = 0

    def __enter__(self) -> Swapper:
        self.process = subprocess.Popen(self.args, stdout=subprocess.PIPE, text=True)
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop.touch()
        out, _ = self.process.communicate(timeout=60)
        self.stop.unlink()
        self.swaps = int(out)


@pytest.fixture
def racy(tmp_path: Path) -> tuple[Path, Path]:
    """A worktree with `d/sub/f.txt`, and a host directory with the same names holding a secret."""
    root, host = tmp_path / "wt", tmp_path / "host"
    for base, text in ((root, "benign\n"), (host, f"benign {SECRET}\n")):
        (base / "d" / "sub").mkdir(parents=True)
        (base / "d" / "sub" / "f.txt").write_text(text)
        (base / "d" / "f.txt").write_text(text)
    (host / "d" / f"{SECRET}.name").write_text(SECRET)
    return root, host


def _host_untouched(host: Path) -> None:
    names = sorted(str(p.relative_to(host)) for p in host.rglob("*"))
    assert names == ["d", f"d/{SECRET}.name", "d/f.txt", "d/sub", "d/sub/f.txt"]
    assert (host / "d" / "f.txt").read_text() == f"benign {SECRET}\n"
    assert (host / "d" / "sub" / "f.txt").read_text() == f"benign {SECRET}\n"


@pytest.mark.parametrize("victim", ["d", "d/sub"])
def test_racing_swap_never_reads_or_writes_outside(
    implementation: str, racy: tuple[Path, Path], victim: str
) -> None:
    root, host = racy
    tools = box(root)
    refused = 0
    calls: list[tuple[str, dict[str, str]]] = [
        ("read_file", {"path": "d/sub/f.txt"}),
        ("write_file", {"path": "d/sub/new.txt", "content": "written\n"}),
        ("edit_file", {"path": "d/sub/f.txt", "old": "benign", "new": "benign"}),
        ("list_files", {"path": "d"}),
        ("search_code", {"pattern": "TOPSECRET|benign", "path": "d"}),
        ("write_file", {"path": "d/sub/deeper/x.txt", "content": "x\n"}),
    ]
    with Swapper(root / victim, host / victim, root.parent / "stop") as attacker:
        for index in range(ITERATIONS):
            name, args = calls[index % len(calls)]
            result = tools.call(name, args)
            assert SECRET not in result.content, (name, result.content)
            refused += result.is_error
    assert attacker.swaps > 100 and refused > 0  # the race was really run, and lost
    _host_untouched(host)


def test_symlinks_are_listed_as_such_and_never_read(root: Path) -> None:
    outside = root.parent / "hostdir"
    outside.mkdir()
    (outside / "creds.txt").write_text("secret key\n")
    os.symlink(outside, root / "pkg" / "linked")
    os.symlink(outside / "creds.txt", root / "pkg" / "creds.txt")
    os.symlink("/proc/self/environ", root / "environ")
    tools = box(root)
    listing = tools.call("list_files", {"path": "."}).content.splitlines()
    assert "pkg/linked [symlink: not followed]" in listing
    assert "pkg/creds.txt [symlink: not followed]" in listing
    assert not any("hostdir" in line or "linked/" in line for line in listing)
    assert tools.call("search_code", {"pattern": "secret|HOME="}).content == "no matches"
    for path in ("pkg/linked", "pkg/linked/creds.txt", "pkg/creds.txt", "environ"):
        for name in ("read_file", "search_code", "list_files"):
            args = {"path": path, "pattern": "."} if name == "search_code" else {"path": path}
            result = tools.call(name, args)
            assert result.is_error and "symlink" in result.content, (name, path, result)
        assert "secret" not in tools.call("read_file", {"path": path}).content


def test_sparse_huge_file_is_refused_fast(root: Path) -> None:
    huge = root / "huge.log"
    with huge.open("wb") as handle:
        handle.write(b"log line\n" * 10)
        handle.truncate(100 * 1024**3)
    (root / "text.log").write_text("abc\n" * 100_000)
    tools = box(root)
    started = time.monotonic()
    assert tools.call("read_file", {"path": "huge.log"}).content == "huge.log: binary file"
    assert tools.call("search_code", {"pattern": "log line"}).content == "no matches"
    edit = tools.call("edit_file", {"path": "huge.log", "old": "log", "new": "x"})
    assert edit.is_error and "not edited" in edit.content
    read = tools.call("read_file", {"path": "text.log"}).content
    assert read.endswith("[... truncated: file is 400000 bytes]")
    assert len(read) < tools_module.MAX_READ_CHARS + 100
    assert time.monotonic() - started < 2.0


def test_fifo_never_blocks_a_tool(root: Path) -> None:
    os.mkfifo(root / "pkg" / "pipe")
    tools = box(root)
    for name, args in (("read_file", {"path": "pkg/pipe"}),
                       ("write_file", {"path": "pkg/pipe", "content": "x"}),
                       ("edit_file", {"path": "pkg/pipe", "old": "x", "new": "y"})):  # fmt: skip
        result = tools.call(name, args)
        assert result.is_error and "not a regular file" in result.content
    assert "pkg/pipe" not in tools.call("list_files", {"path": "."}).content
    assert tools.call("search_code", {"pattern": "."}).content.startswith("pkg/a.py:1:")


def test_unknown_argument_is_refused(root: Path) -> None:
    result = box(root).call("run", {"command": "ls", "time_left": "999"})
    assert result.is_error and "unknown time_left" in result.content


def test_run_gets_at_most_the_time_left(root: Path) -> None:
    seen: list[float] = []

    def runner(command: str, time_left: float) -> ExecResult:
        seen.append(time_left)
        return ExecResult(command, 0, "", 0.0)

    tools = Toolbox(root, runner, output_chars=1000)
    assert not tools.call("run", {"command": "a"}, time_left=12.5).is_error
    late = tools.call("run", {"command": "b"}, time_left=0)
    assert late.is_error and "wall-time" in late.content and seen == [12.5]


# -- the worktree may grow only so much -----------------------------------------------------


class Filler:
    """Stands for a sandbox command that leaves files in the bind-mounted worktree."""

    def __init__(self, root: Path, make: Callable[[Path], None]) -> None:
        self.root, self.make = root, make

    def __call__(self, command: str, time_left: float) -> ExecResult:
        self.make(self.root)
        return ExecResult(command, 0, "done", 0.1)


def _sparse(root: Path) -> None:
    with (root / "sparse.bin").open("wb") as handle:
        handle.truncate(100 * 1024**3)


def _many(root: Path) -> None:
    (root / "many").mkdir()
    for index in range(12_000):  # 12,000 empty files count as 12,000 blocks of 4 KiB
        (root / "many" / str(index)).touch()


def _dense(root: Path) -> None:
    (root / "blob.bin").write_bytes(os.urandom(48 * 1024 * 1024))


@pytest.mark.parametrize("make", [_many, _dense])
def test_worktree_past_its_limit_fails_the_attempt(
    root: Path, make: Callable[[Path], None]
) -> None:
    footprint = Footprint(root, limit_mb=2)
    tools = Toolbox(root, Filler(root, make), output_chars=1000, footprint=footprint)
    result = tools.call("run", {"command": "fill"})
    assert result.is_error and "this attempt fails" in result.content
    assert tools.excess is not None and "agent.max_worktree_mb" in tools.excess
    assert footprint.excess() == tools.excess


def test_sparse_file_is_caught_by_the_exact_measure(root: Path) -> None:
    """No blocks, so not by the filesystem counters after `run`; by the measure that
    comes before host git reads the worktree."""
    footprint = Footprint(root, limit_mb=2)
    _sparse(root)
    assert footprint.excess() is not None


def test_other_growth_on_the_filesystem_is_not_the_attempts(root: Path) -> None:
    footprint = Footprint(root, limit_mb=2)
    (root.parent / "neighbour.bin").write_bytes(os.urandom(3 * 1024 * 1024))
    assert footprint.quick_excess() is None and footprint.excess() is None


def test_worktree_growth_is_what_counts(root: Path) -> None:
    (root / "vendored.bin").write_bytes(os.urandom(3 * 1024 * 1024))  # was there before
    footprint = Footprint(root, limit_mb=2)
    tools = Toolbox(root, Filler(root, lambda r: None), output_chars=1000, footprint=footprint)
    assert not tools.call("run", {"command": "ok"}).is_error and tools.excess is None
    for index in range(3):  # writes add up too: measured once they could pass the limit
        tools.call("write_file", {"path": f"w{index}.bin", "content": "x" * 900_000})
    assert tools.excess is not None


def test_footprint_walk_does_not_follow_symlinks(root: Path) -> None:
    big = root.parent / "bighost"
    big.mkdir()
    (big / "blob").write_bytes(b"\0" * (3 * 1024 * 1024))
    footprint = Footprint(root, limit_mb=1)
    os.symlink(big, root / "host")
    os.symlink(big / "blob", root / "blob")
    assert footprint.excess() is None


def test_growth_hidden_by_a_neighbour_freeing_space_is_still_caught(root: Path) -> None:
    other = root.parent / "neighbour.bin"
    other.write_bytes(os.urandom(9 * 1024 * 1024))
    os.sync()
    footprint = Footprint(root, limit_mb=5)
    (root / "big.bin").write_bytes(os.urandom(8 * 1024 * 1024))
    other.unlink()  # the filesystem as a whole shrank: its counters alone would say "fine"
    os.sync()
    assert footprint.quick_excess() is not None


# -- edits keep the file's encoding, line endings and final newline ---------------------------


def test_edit_keeps_crlf(root: Path) -> None:
    path = root / "win.py"
    path.write_bytes(b"a = 1\r\nb = 2\r\nc = 3\r\n")
    tools = box(root)
    assert not tools.call("edit_file", {"path": "win.py", "old": "a = 1\nb = 2",
                                        "new": "a = 10\nb = 20\nz = 0"}).is_error  # fmt: skip
    assert path.read_bytes() == b"a = 10\r\nb = 20\r\nz = 0\r\nc = 3\r\n"
    crlf = tools.call("edit_file", {"path": "win.py", "old": "c = 3\r\n", "new": "c = 4\r\n"})
    assert not crlf.is_error
    assert path.read_bytes() == b"a = 10\r\nb = 20\r\nz = 0\r\nc = 4\r\n"


def test_edit_keeps_bom_and_final_newline(root: Path) -> None:
    path = root / "bom.py"
    path.write_bytes(b"\xef\xbb\xbfx = 1\ny = 'caf\xc3\xa9'\n")
    tools = box(root)
    assert tools.call("read_file", {"path": "bom.py"}).content == "x = 1\ny = 'café'\n"
    assert not tools.call("edit_file", {"path": "bom.py", "old": "y = 'café'\n",
                                        "new": "y = 'thé'"}).is_error  # fmt: skip
    assert path.read_bytes() == b"\xef\xbb\xbfx = 1\ny = 'th\xc3\xa9'\n"
    nofinal = root / "nofinal.txt"
    nofinal.write_bytes(b"end")
    assert not tools.call("edit_file", {"path": "nofinal.txt", "old": "end", "new": "x"}).is_error
    assert nofinal.read_bytes() == b"x"


def test_edit_of_a_latin1_file_keeps_its_bytes(root: Path) -> None:
    path = root / "legacy.py"
    path.write_bytes(b"# caf\xe9\nname = 'x'\n")  # latin-1, not UTF-8
    tools = box(root)
    assert not tools.call("edit_file", {"path": "legacy.py", "old": "'x'", "new": "'é'"}).is_error
    assert path.read_bytes() == b"# caf\xe9\nname = '\xe9'\n"
    wide = tools.call("edit_file", {"path": "legacy.py", "old": "name", "new": "名前"})
    assert wide.is_error and "not UTF-8" in wide.content
    missing = tools.call("edit_file", {"path": "legacy.py", "old": "caf\ufffd", "new": "x"})
    assert missing.is_error and "latin-1" in missing.content
    assert path.read_bytes() == b"# caf\xe9\nname = '\xe9'\n"


def test_write_over_a_crlf_file_keeps_crlf_unless_content_has_it(root: Path) -> None:
    path = root / "win.txt"
    path.write_bytes(b"\xef\xbb\xbfone\r\ntwo\r\n")
    tools = box(root)
    tools.call("write_file", {"path": "win.txt", "content": "uno\ndos\n"})
    assert path.read_bytes() == b"\xef\xbb\xbfuno\r\ndos\r\n"
    tools.call("write_file", {"path": "win.txt", "content": "mixed\r\nlf\n"})
    assert path.read_bytes() == b"\xef\xbb\xbfmixed\r\nlf\n"
    tools.call("write_file", {"path": "new.txt", "content": "a\nb\n"})
    assert (root / "new.txt").read_bytes() == b"a\nb\n"


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be", "utf-32-le"])
def test_a_utf16_or_utf32_file_is_read_edited_and_written_in_its_own_encoding(
    root: Path, encoding: str
) -> None:
    path = root / "Build.ps1"  # PowerShell and Visual Studio write such files
    path.write_bytes("\ufeffWrite-Host 'café'\r\nexit 0\r\n".encode(encoding))
    tools = box(root)
    assert (
        tools.call("read_file", {"path": "Build.ps1"}).content == "Write-Host 'café'\r\nexit 0\r\n"
    )
    assert not tools.call("edit_file", {"path": "Build.ps1", "old": "exit 0\n",
                                        "new": "exit 1\n"}).is_error  # fmt: skip
    assert path.read_bytes() == "\ufeffWrite-Host 'café'\r\nexit 1\r\n".encode(encoding)
    tools.call("write_file", {"path": "Build.ps1", "content": "exit 2\n"})
    assert path.read_bytes() == "\ufeffexit 2\r\n".encode(encoding)


def test_a_nul_without_a_byte_order_mark_is_still_binary(root: Path) -> None:
    (root / "blob.bin").write_bytes(b"abc\0def")
    assert box(root).call("read_file", {"path": "blob.bin"}).is_error


# -- the same attacks from a real sandbox: a process `run` left behind ------------------------


SANDBOX_SWAP = """
import os, shutil
while True:
    try:
        shutil.rmtree("d", ignore_errors=True)
        os.symlink("/", "d")
        sum(range(20000))  # the symlink stays a while
        os.unlink("d")
        os.makedirs("d/p")
        open("d/p/f", "w").close()
    except OSError:
        pass
"""


@pytest.mark.docker
def test_background_process_in_a_real_sandbox_can_not_lead_the_tools_out(
    docker_engine: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from karma.config import KarmaConfig
    from karma.sandbox import get_sandbox
    from karma.sandbox.interface import SandboxSpec

    monkeypatch.setenv("KARMA_HOST_MARKER", SECRET)  # what /proc/self/environ would show
    root, host = tmp_path / "wt", tmp_path / "host"
    (root / "d").mkdir(parents=True)
    host.mkdir()
    (host / "secret.txt").write_text(f"{SECRET}\n")
    backend = get_sandbox(KarmaConfig())
    sandbox = backend.start(SandboxSpec(docker_engine, root, "tools-test", "race"))
    try:
        tools = Toolbox(
            root,
            lambda cmd, left: sandbox.exec(cmd, timeout_s=min(60.0, left)),
            output_chars=4000,
        )
        (root / "swap.py").write_text(SANDBOX_SWAP)  # no fork per swap: the pids limit holds
        started = tools.call("run", {"command": "nohup python3 swap.py >/dev/null 2>&1 &"})
        assert not started.is_error, started.content
        tools.call("run", {"command": "sleep 1"})  # python3 is up and swapping
        host_file = str(host / "secret.txt").lstrip("/")
        calls: list[tuple[str, dict[str, str]]] = [
            ("read_file", {"path": f"d/{host_file}"}),
            ("read_file", {"path": "d/proc/self/environ"}),
            ("write_file", {"path": f"d/{str(host).lstrip('/')}/pwned", "content": "x"}),
            ("edit_file", {"path": f"d/{host_file}", "old": SECRET, "new": "gone"}),
            ("list_files", {"path": f"d/{str(host).lstrip('/')}"}),
            ("search_code", {"pattern": "TOPSECRET|KARMA_HOST_MARKER", "path": "d"}),
            ("write_file", {"path": "d/p/f", "content": "inside\n"}),
        ]
        symlinked = 0
        for index in range(ITERATIONS):
            name, args = calls[index % len(calls)]
            result = tools.call(name, args)
            assert SECRET not in result.content and "KARMA_HOST_MARKER" not in result.content
            symlinked += "symlink" in result.content
        assert symlinked > 0  # the swap was really racing the tools
        alive = tools.call(  # [s]: the pattern does not match grep's own command line
            "run", {"command": "cat /proc/[0-9]*/cmdline | tr '\\0' '\\n' | grep -c '^[s]wap.py$'"}
        )
        assert alive.content.split()[-1] != "0", alive.content  # it ran the whole time
    finally:
        sandbox.close()
    assert sorted(p.name for p in host.iterdir()) == ["secret.txt"]
    assert (host / "secret.txt").read_text() == f"{SECRET}\n"
