"""Untrusted text in HTML: every value is escaped unless it is markup we built (`Safe`).

Escaping is not left to care: values go into markup through `h()` / `Safe`, so a string
is redacted, stripped of controls and escaped unless it is markup KARMA built itself.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from string import Template

from karma.text.inert import plain


class Safe(str):
    """Markup built here, already escaped."""


def esc(value: object, limit: int | None = None) -> Safe:
    if isinstance(value, Safe):
        return value
    return Safe(html.escape(plain("" if value is None else value, limit), quote=True))


def h(template: str, **values: object) -> Safe:
    """`template` with `$name`s filled, each value escaped unless it is `Safe`."""
    return Safe(Template(template).substitute({k: esc(v) for k, v in values.items()}))


def join(parts: Iterable[str]) -> Safe:
    return Safe("".join(p if isinstance(p, Safe) else esc(p) for p in parts))
