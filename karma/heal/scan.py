"""The literal prefilter: where in a log each line regex could match, found in one pass.

A regex search over a 20 KB log costs ~0.1 ms even when nothing matches (the engine tries
every position), and the pattern table holds hundreds of regexes. So each regex gets the
literals one of which any match must contain (read from its parse tree); every literal of
a table is found in one Aho-Corasick pass (`ahocorasick-rs`, the Rust `aho-corasick`
crate that ripgrep uses), and a regex then runs only on the lines holding one of its
literals. Without the library the same hits come from one `str.find` scan per literal:
the same answers, several times slower.

Trust: the text scanned is untrusted tool output; the regexes come from recipes. The work
is bounded whatever the text: one linear pass, then at most `MAX_LINES_CHECKED` lines per
regex before one plain search of the rest.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence
from heapq import merge
from typing import Any

MIN_LITERAL = 3
"""A shorter literal is on too many lines to be worth looking for (unless it is not ASCII)."""
MAX_LINES_CHECKED = 64


def _long_enough(literal: str) -> bool:
    return len(literal) >= MIN_LITERAL or (bool(literal) and not literal.isascii())


def _needs(items: Any) -> list[str] | None:
    """Substrings one of which any match must contain (None: no useful one).

    The longest mandatory literal run, or for a mandatory alternation the set of its
    branches' literals.
    """
    from re import _constants as c  # type: ignore[attr-defined]

    best: list[str] | None = None
    run: list[str] = []

    def weight(candidate: list[str]) -> int:
        return min(len(lit) if lit.isascii() else MIN_LITERAL + 1 for lit in candidate)

    def consider(candidate: list[str] | None) -> None:
        nonlocal best
        if not candidate or not all(map(_long_enough, candidate)):
            return
        if best is None or weight(candidate) > weight(best):
            best = candidate

    for op, av in items:
        if op is c.LITERAL:
            run.append(chr(av))
            continue
        consider(["".join(run)] if run else None)
        run = []
        if op is c.SUBPATTERN and not (av[1] & re.IGNORECASE):
            consider(_needs(av[3]))
        elif op is c.BRANCH:
            branches = [_needs(branch) for branch in av[1]]
            if all(branches):
                consider([lit for branch in branches if branch for lit in branch])
        elif op in (c.MAX_REPEAT, c.MIN_REPEAT) and av[0] >= 1:
            consider(_needs(av[2]))
    consider(["".join(run)] if run else None)
    return best


def needed_literals(regex: str) -> tuple[str, ...]:
    """The literals one of which any match of `regex` contains; () when there is none."""
    from re import _parser  # type: ignore[attr-defined]

    parsed = _parser.parse(regex, re.MULTILINE)
    if parsed.state.flags & re.IGNORECASE:
        return ()
    return tuple(_needs(parsed.data) or ())


class Hits:
    """Where each literal starts in one text, in order; `start` cuts off what comes before."""

    __slots__ = ("start", "starts")

    def __init__(self, starts: dict[str, list[int]], start: int = 0) -> None:
        self.starts = starts
        self.start = start

    def __contains__(self, literal: object) -> bool:
        return literal in self.starts

    def since(self, start: int) -> Hits:
        """The hits at or after `start` (a window at the end of the text)."""
        kept: dict[str, list[int]] = {}
        for literal, positions in self.starts.items():
            if positions[-1] >= start:
                kept[literal] = positions[bisect_left(positions, start) :]
        return Hits(kept, start)

    def any_of(self, literals: Sequence[str]) -> bool:
        return any(lit in self.starts for lit in literals)

    def positions(self, literals: Sequence[str]) -> Iterable[int]:
        found = [self.starts[lit] for lit in literals if lit in self.starts]
        if len(found) == 1:
            return found[0]
        return merge(*found)


class LiteralScan:
    """All the literals of a set of regexes, found in a text in one pass."""

    def __init__(self, literals: Iterable[str], *, automaton: bool = True) -> None:
        self.literals = sorted(set(literals))
        self._automaton: Any = None
        if not automaton:
            return
        try:
            import ahocorasick_rs  # type: ignore[import-not-found,unused-ignore]
        except ImportError:  # the slower scan: same hits
            return
        if self.literals:
            self._automaton = ahocorasick_rs.AhoCorasick(self.literals)

    @property
    def backend(self) -> str:
        """`aho-corasick` (one pass) or `str.find` (the fallback scan)."""
        return "aho-corasick" if self._automaton is not None else "str.find"

    def scan(self, text: str) -> Hits:
        starts: dict[str, list[int]] = {}
        if self._automaton is not None:
            literals = self.literals
            for index, begin, _end in self._automaton.find_matches_as_indexes(
                text, overlapping=True
            ):
                starts.setdefault(literals[index], []).append(begin)
            return Hits(starts)
        for literal in self.literals:
            at = text.find(literal)
            while at != -1:
                starts.setdefault(literal, []).append(at)
                at = text.find(literal, at + 1)
        return Hits(starts)


class LineRegex:
    """A compiled line regex and the literals a match needs (checked first: cheap)."""

    __slots__ = ("compiled", "needs", "pattern")

    def __init__(self, regex: str, flags: int = re.MULTILINE) -> None:
        self.pattern = regex
        self.compiled = re.compile(regex, flags)
        self.needs = needed_literals(regex)

    def possible(self, hits: Hits) -> bool:
        """False when the text lacks every literal a match needs."""
        return not self.needs or hits.any_of(self.needs)

    def matches(self, text: str, hits: Hits) -> Iterator[re.Match[str]]:
        """Matches in `text` from `hits.start`, in order, searching only the lines hits are on.

        A literal on too many lines falls back to one pass over the rest of the text.
        """
        if not self.needs:
            yield from self.compiled.finditer(text, hits.start)
            return
        end, checked = -1, 0
        for at in hits.positions(self.needs):
            if at <= end:
                continue  # this line was searched already
            begin = text.rfind("\n", 0, at) + 1
            end = text.find("\n", at)
            end = len(text) if end == -1 else end
            yield from self.compiled.finditer(text, max(begin, hits.start), end)
            checked += 1
            if checked > MAX_LINES_CHECKED:
                yield from self.compiled.finditer(text, end)
                return

    def search(self, text: str, hits: Hits) -> re.Match[str] | None:
        if not self.possible(hits):
            return None
        return next(self.matches(text, hits), None)
