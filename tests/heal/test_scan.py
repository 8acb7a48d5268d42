"""The literal prefilter: the same hits with and without the automaton, on hostile text."""

from __future__ import annotations

import pytest

from karma.heal.scan import MAX_LINES_CHECKED, Hits, LineRegex, LiteralScan, needed_literals

LITERALS = ["error", "rror", "No space left", "●", "ERR!"]
HOSTILE = {
    "empty": "",
    "non_ascii_before": "ééé ● error\n日本語 rror ERR! No space left\n",
    "overlapping": "errorerrorrror" * 50,
    "one_long_line": "x" * 10_000 + "error" + "y" * 10_000,
    "nul_and_controls": "\x00\x01error\x7f\n\ufffdERR!\n",
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_the_automaton_and_the_plain_scan_agree(name: str) -> None:
    text = HOSTILE[name]
    fast = LiteralScan(LITERALS).scan(text).starts
    slow = LiteralScan(LITERALS, automaton=False).scan(text).starts
    assert fast == slow
    for literal, starts in fast.items():
        assert all(text.startswith(literal, at) for at in starts)


def test_needed_literals_come_from_the_parse_tree() -> None:
    assert needed_literals(r"^npm ERR! code E\w+") == ("npm ERR! code E",)
    assert set(needed_literals(r"(?:Killed|OOMKilled) process")) == {" process"}
    assert set(needed_literals(r"(?:Killed|OOM) \d+")) == {"Killed", "OOM"}
    assert needed_literals(r"(?i)error") == ()  # case-insensitive: no literal to look for
    assert needed_literals(r"●.*›") == ("●",)  # a rare character is worth looking for


def test_a_regex_runs_only_on_the_lines_its_literals_are_on() -> None:
    rx = LineRegex(r"^E\d+ error: (.*)$")
    text = "E1 error: first\nnoise\nE2 error: second\n"
    hits = LiteralScan(rx.needs).scan(text)
    assert [m.group(1) for m in rx.matches(text, hits)] == ["first", "second"]
    assert [m.group(1) for m in rx.matches(text, hits.since(text.index("noise")))] == ["second"]
    assert rx.search(text, Hits({})) is None


def test_a_literal_on_every_line_falls_back_to_one_search() -> None:
    rx = LineRegex(r"error: (\d+)")
    text = "error\n" * (MAX_LINES_CHECKED * 4) + "error: 42\n"
    hits = LiteralScan(rx.needs).scan(text)
    assert [m.group(1) for m in rx.matches(text, hits)] == ["42"]


KEY_TEXTS = {
    "codes": "E0308 x\nfoo E123\n_e1234 error\nxts1234\nts12345\nerror[E0599]: no method\n",
    "unicode_lower_changes_length": "İİİ error\nfine\nfatal: x\n",
    "blank_and_spaces": "\n\n  \n   error   \n\t\n",
    "separators": "ERROR\u2028next error\r\nfail\x85end",
    "many": "".join(f"line {i} failed\nok {i}\n" for i in range(100)),
}


@pytest.mark.parametrize("name", sorted(KEY_TEXTS))
def test_key_lines_in_one_pass_are_the_lines_the_line_test_finds(name: str) -> None:
    from karma.heal.signature import KEY_LINE, key_lines

    text = KEY_TEXTS[name]
    for limit in (1, 8, 24):
        expected = [line.strip() for line in text.split("\n")
                    if line.strip() and KEY_LINE.search(line.strip().lower())][-limit:]  # fmt: skip
        expected = (
            list(dict.fromkeys(expected))
            or [line.strip() for line in text.splitlines() if line.strip()][-3:]
        )
        assert key_lines(text, limit=limit) == expected
