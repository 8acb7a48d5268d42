"""Untrusted text escaped for the Markdown it lands in (reports, step summaries, digests)."""

from __future__ import annotations

import re

from karma.text.inert import plain

# `+ - .` only matter at the start of a line, where inline text never goes.
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#!|~>])")


def md_inline(text: object, limit: int = 300) -> str:
    """Untrusted text as inert inline Markdown (also safe in a table cell)."""
    flat = plain(text, limit).replace("\n", " ")
    flat = flat.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    flat = _MD_SPECIAL.sub(r"\\\1", flat).replace("@", "&#64;").replace(":", "&#58;")
    return flat


def md_block(text: object, limit: int = 4000) -> str:
    """Untrusted multi-line text as a fenced block no text can close early."""
    body = plain(text, limit)
    longest = max((len(m) for m in re.findall(r"`+", body)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{body}\n{fence}"


def md_code(text: object, limit: int = 200) -> str:
    """Untrusted text as one code span (nothing inside a code span is rendered)."""
    flat = plain(text, limit).replace("\n", " ")
    longest = max((len(m) for m in re.findall(r"`+", flat)), default=0)
    fence = "`" * (longest + 1)
    return f"{fence} {flat} {fence}"


def mermaid_label(text: object) -> str:
    """Untrusted text as a Mermaid node label: only characters Mermaid cannot misread."""
    return re.sub(r"[^A-Za-z0-9 _.,/()\-]", " ", plain(text, 60)).strip() or "task"
