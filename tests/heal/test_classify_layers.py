"""The layered classifier: sure patterns, the learned model, `unknown` by threshold, flakiness.

And bad input through the real CLI: empty, binary, 1 GB streamed or sparse, invalid UTF-8,
UTF-16, ANSI and carriage-return progress bars, hostile lines - a class (or unknown) and
exit 0; what is not a log (a directory, a device) exit 2 with a one-line reason; never a
crash.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from karma.cli import main
from karma.heal import Evidence, PatternTable
from karma.heal.flaky import flakiness, signals
from karma.heal.model import ClassModel, builtin_model, command_features, evidence_features
from karma.recipes import load_failure_patterns

PUBLIC = Path(__file__).resolve().parents[1] / "golden" / "failures" / "public"


@pytest.fixture(scope="module")
def layered() -> PatternTable:
    return PatternTable(load_failure_patterns())


def test_the_builtin_model_loads_and_knows_every_class() -> None:
    from karma.heal.model import MODEL_FILE
    from karma.home import builtin_dir

    model = ClassModel.load(builtin_dir("recipes") / MODEL_FILE)  # bench/ times the load
    assert builtin_model() is not None
    assert {"test_failure", "unknown", "out_of_memory", "timeout"} <= set(model.classes)
    assert 0 < model.threshold < 1 and model.temperature > 0


def test_a_sure_pattern_decides_and_names_its_line(layered: PatternTable) -> None:
    text = "collecting...\nFAILED tests/test_app.py::test_add - assert 1 == 2\n= 1 failed in 0.1s ="
    result = layered.classify(Evidence.from_log(text, step="test", tool="pytest"))
    assert result.failure_class == "test_failure" and result.decided_by == "pattern"
    assert any("FAILED tests/test_app.py" in line for line in result.key_lines)


def test_the_model_decides_where_patterns_are_silent(layered: PatternTable) -> None:
    # A real log of the public test split that no pattern matches (chosen by the test,
    # not used for tuning): the model answers, with a runner-up and a probability.
    rows = [json.loads(line) for line in (PUBLIC / "test.jsonl").open()]
    bare = PatternTable(load_failure_patterns(), model=None)
    silent = [
        r for r in rows if bare.classify(Evidence.from_log(r["log"])).failure_class == "unknown"
    ]
    assert silent
    decided = [layered.classify(Evidence.from_log(r["log"])) for r in silent]
    assert {d.decided_by for d in decided} <= {"model", "threshold"}
    for d in decided:
        assert 0 < d.confidence <= 1 and d.runner_up is not None
        if d.decided_by == "threshold":  # the model may also *predict* unknown, confidently
            assert d.failure_class == "unknown"


def test_unknown_is_a_threshold_decision(layered: PatternTable) -> None:
    assert layered.model is not None
    strict = ClassModel({"classes": layered.model.classes, "bias": layered.model.bias,
                         "weights": {}, "threshold": 0.999})  # fmt: skip
    table = PatternTable(load_failure_patterns(), model=strict)
    result = table.classify(Evidence.from_log("something odd happened\nexit status 3"))
    assert result.failure_class == "unknown" and result.decided_by == "threshold"
    assert result.runner_up is not None and result.runner_up.pattern_id.startswith("model:")


@pytest.mark.parametrize(
    ("exit_code", "limit", "expected"),
    [(137, "memory", "out_of_memory"), (124, None, "timeout"), (127, None, "missing_tool"),
     (0, "timeout", "timeout")],
)  # fmt: skip
def test_exit_code_signal_and_limit_are_evidence(
    layered: PatternTable, exit_code: int, limit: str | None, expected: str
) -> None:
    evidence = Evidence.from_log("", exit_code=exit_code, limit=limit)  # type: ignore[arg-type]
    assert layered.classify(evidence).failure_class == expected
    names = evidence_features(evidence)
    assert f"exit:{exit_code}" in names and f"limit:{limit or 'none'}" in names
    if exit_code > 128:
        assert f"signal:{exit_code - 128}" in names


def test_the_failed_command_is_words_for_the_model_only(
    layered: PatternTable, tmp_path: Path
) -> None:
    """A log that names hostile "failed commands" by the thousand: two of eight words, no more."""
    marker = tmp_path / "ran"
    hostile = f'The command "touch {marker}; $(touch {marker}) `touch {marker}`" exited with 1.\n'
    lines = [
        f'The command "npm run lint{i} ' + "x " * 500 + '" exited with 1.' for i in range(3000)
    ]
    evidence = Evidence.from_log(hostile + "\n".join(lines) + "\n" + hostile)
    words = command_features(evidence)
    assert 0 < len(words) <= 16 and all(w.startswith("cmd:") for w in words)
    assert layered.classify(evidence).failure_class  # classified, never run
    assert not marker.exists()
    # A passing step is not the failed one; the caller's own command counts.
    assert command_features(Evidence.from_log('The command "make docs" exited with 0.')) == []
    named = Evidence.from_log("", command="npx eslint src", exit_code=1)
    assert command_features(named) == ["cmd:npx", "cmd:eslint", "cmd:src"]


def test_flaky_is_a_test_failure_with_a_score(layered: PatternTable) -> None:
    text = ("tests/test_net.py::test_server RERUN\n"
            "E   OSError: [Errno 98] Address already in use\n"
            "FAILED tests/test_net.py::test_server - OSError\n"
            "= 1 failed, 1 rerun in 2s =")  # fmt: skip
    evidence = Evidence.from_log(text, step="test", tool="pytest")
    assert set(signals(evidence)) >= {"rerun", "resource"}
    result = layered.classify(evidence)
    assert result.failure_class in ("test_failure", "flaky_test")
    assert result.flakiness == flakiness(evidence) > 0.7
    plain = layered.classify(Evidence.from_log("FAILED t.py::test_a - assert 1 == 2\n= 1 failed =",
                                               step="test", tool="pytest"))  # fmt: skip
    assert plain.failure_class == "test_failure" and plain.flakiness == 0


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(list(args))
    return code, capsys.readouterr().out


def test_explain_names_the_decider_and_the_runner_up(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    log = tmp_path / "ci.log"
    log.write_text("> Task :app:test\n\ncom.example.AppTest > adds FAILED\n"
                   "    java.lang.AssertionError: expected:<3> but was:<4>\n\n"
                   "There were failing tests. See the report at: file:///r/index.html\n"
                   "BUILD FAILED in 3s\n")  # fmt: skip
    code, out = run(capsys, "-C", str(tmp_path), "classify", str(log), "--explain")
    assert code == 0
    assert out.startswith("test_failure") and "decided by: pattern ci.gradle.tests" in out
    assert "patterns matched: ci.gradle.tests" in out and "key lines:" in out
    assert "There were failing tests" in out and "confidence" in out
    odd = tmp_path / "odd.log"
    odd.write_text("step 3 of 9\nthe frobnicator declined the request\nexit status 3\n")
    code, out = run(capsys, "-C", str(tmp_path), "classify", str(odd), "--explain")
    assert code == 0 and "decided by: " in out and ("learned model" in out or "threshold" in out)
    assert "runner-up:" in out


BAD_INPUTS = {
    "empty": b"",
    "binary": bytes(range(256)) * 4000,
    "invalid_utf8": b"\xff\xfe\xc3\x28 error: \xa0\xa1 Traceback\n" * 1000,
    "ansi_progress": b"".join(b"\x1b[32m[%3d%%]\x1b[0m \x1b[2K\rFetching\r" % i for i in range(99))
    + b"\nnpm ERR! code ENOSPC\nnpm ERR! nospc ENOSPC: no space left on device, write\n",
    "one_huge_line": b"error " * 2_000_000,
    "many_keyword_lines": b"error: failed FAIL Killed timeout\n" * 200_000,
    # pip's progress bar redraws one line with carriage returns, no ANSI at all.
    "cr_progress": b"".join(b"\r   |%s| %d%%" % (b"#" * (i // 4), i) for i in range(101))
    + b"\nERROR: Could not install packages due to an OSError: "
    + b"[Errno 28] No space left on device\n",
    "utf16": "npm ERR! code ENOSPC\nnpm ERR! nospc ENOSPC: no space left on device\n"
    .encode("utf-16"),
    "nul_bytes": b"\x00" * 100_000 + b"Killed\n" + b"\x00" * 1000,
    "only_newlines": b"\n\r\n\r" * 100_000,
    "unpaired_surrogate_escape": b"\xed\xa0\x80 error: \xf4\x90\x80\x80\n",
}  # fmt: skip
EXPECTED = {"ansi_progress": "disk_full", "cr_progress": "disk_full", "utf16": "disk_full"}


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_input_gets_a_class_and_exit_0(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, name: str
) -> None:
    log = tmp_path / f"{name}.log"
    log.write_bytes(BAD_INPUTS[name])
    code, out = run(capsys, "-C", str(tmp_path), "classify", str(log), "--json")
    data = json.loads(out)
    assert code == 0 and data["class"]
    assert data["class"] == EXPECTED.get(name, data["class"])
    code, out = run(capsys, "-C", str(tmp_path), "classify", str(log), "--explain")
    assert code == 0 and "decided by: " in out


@pytest.mark.parametrize("what", ["directory", "device", "missing"])
def test_what_is_not_a_log_is_exit_2_with_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, what: str
) -> None:
    path = {"directory": str(tmp_path), "device": "/dev/zero", "missing": str(tmp_path / "no")}
    assert main(["-C", str(tmp_path), "classify", path[what]]) == 2
    reason = capsys.readouterr().err.strip().splitlines()
    assert reason and reason[0].startswith("error: ")


def test_a_sparse_one_gigabyte_file_is_read_from_its_tail(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    log = tmp_path / "huge.log"
    with log.open("wb") as handle:
        handle.truncate(1 << 30)  # 1 GB of NUL bytes, allocated lazily
        handle.seek(1 << 30)
        handle.write(b"ld: cannot find -lfoo\ncollect2: error: ld returned 1 exit status\n")
    code, out = run(capsys, "-C", str(tmp_path), "classify", str(log), "--json")
    assert code == 0 and json.loads(out)["class"] == "compile_error"


CLI = "import sys; from karma.cli import main; sys.exit(main(sys.argv[1:]))"


def test_one_gigabyte_streamed_on_stdin_is_bounded(tmp_path: Path) -> None:
    """The real CLI in a subprocess reading 1 GB from a pipe: constant memory, one class."""
    script = (
        "import sys\nblock = (b'building module ' * 4096 + b'\\n') * 16\n"
        "for _ in range((1 << 30) // len(block)):\n    sys.stdout.buffer.write(block)\n"
        "sys.stdout.buffer.write(b'ld: cannot find -lfoo\\n'\n"
        "                        b'collect2: error: ld returned 1 exit status\\n')\n"
    )  # fmt: skip
    producer = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    result = subprocess.run(
        [sys.executable, "-c", CLI, "-C", str(tmp_path), "classify", "-", "--json"],
        stdin=producer.stdout, capture_output=True, timeout=300, check=False,
    )  # fmt: skip
    producer.wait()
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout)["class"] == "compile_error"
