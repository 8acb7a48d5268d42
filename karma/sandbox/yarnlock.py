"""yarn 1's `yarn.lock`, read as data: a strict parser of the v1 format and its rules.

The format (yarn's `lockfile/stringify.js`): `#` comments and blank lines; an entry is a
line at column 0 naming its keys (`debug@^4.3.4, debug@^4.1.0:`, quoted when they hold
special characters), then its fields two spaces in (`version "4.4.3"`, `resolved "…"`,
`integrity sha512-…`), a map field (`dependencies:`) holding its own lines four spaces in.
Values are JSON-quoted strings or bare words. Anything else — another indentation, a
tab, a line that is neither — is refused, never guessed at: the file is the target
repository's, untrusted, and the host only reads it.

The rules (`check`) are `package-lock.json`'s (`karma.sandbox.npm`): every entry a package
name at a version, fetched from a tarball of the public registry over https (yarn writes
`registry.yarnpkg.com`, yarn's name for the same registry, or `registry.npmjs.org` —
both accepted, no other host), with a sha512 `integrity`. A git, `file:`, `link:` or
other host's source is refused. A yarn 2+ ("berry") lockfile is YAML, read by
`karma.sandbox.berrylock`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from karma.sandbox.interface import ImageBuildError

LOCKFILE = "yarn.lock"
HOSTS = ("registry.yarnpkg.com", "registry.npmjs.org")
"""The public npm registry under its two names; a `resolved` URL names one of them."""
NAME = re.compile(r"(@[a-z0-9][a-z0-9._~-]*/)?[a-z0-9][a-z0-9._~-]{0,213}")
"""A package name npm accepts (lower case, an optional scope)."""
TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[^\s",]+')
SEPARATOR = re.compile(r" *, *| +")
LOCAL = ("file:", "link:", "portal:", "workspace:", "git", "github:", "http:", "https:")
"""Ranges that name a source other than the registry (`git+ssh:`, `github:`, a URL...)."""


@dataclass(frozen=True)
class Entry:
    """One entry of the lockfile: its keys (`name@range`), fields and map fields."""

    keys: tuple[str, ...]
    line: int
    fields: dict[str, str] = field(default_factory=dict)
    maps: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return split_key(self.keys[0])[0]


def refused(reason: str, line: int = 0) -> ImageBuildError:
    where = f" (line {line})" if line else ""
    return ImageBuildError(
        f"{LOCKFILE} refused{where}: {reason}",
        tip="packages come only from https://registry.npmjs.org/ (yarn's "
        "https://registry.yarnpkg.com/); regenerate yarn.lock with yarn 1 against it",
    )


def split_key(key: str) -> tuple[str, str]:
    """`@scope/name@^1` -> (`@scope/name`, `^1`)."""
    at = key.find("@", 1)
    return (key, "") if at < 0 else (key[:at], key[at + 1 :])


def _value(token: str, line: int) -> str:
    if not token.startswith('"'):
        return token
    try:
        value = json.loads(token)
    except json.JSONDecodeError:
        raise refused(f"a malformed string {token[:80]!r}", line) from None
    if not isinstance(value, str):
        raise refused(f"a malformed string {token[:80]!r}", line)
    return value


def _tokens(text: str, line: int) -> list[str]:
    """The quoted strings and bare words of `text`, separated by spaces or commas."""
    found: list[str] = []
    at = 0
    while at < len(text):
        token = TOKEN.match(text, at)
        if token is None:
            raise refused(f"an unreadable line {text[:80]!r}", line)
        found.append(_value(token.group(), line))
        gap = SEPARATOR.match(text, token.end())
        at = gap.end() if gap else token.end()
        if at == token.end() and at < len(text):
            raise refused(f"an unreadable line {text[:80]!r}", line)
    return found


def parse(text: str) -> list[Entry]:
    """The entries of a yarn v1 lockfile, or `ImageBuildError` on anything else."""
    if "__metadata:" in text:
        raise refused("a yarn 2+ (berry) lockfile, read by karma.sandbox.berrylock")
    if "# yarn lockfile v1" not in text.splitlines()[:5]:
        raise refused("no `# yarn lockfile v1` header")
    entries: list[Entry] = []
    current: Entry | None = None
    open_map: dict[str, str] | None = None
    for number, raw in enumerate(text.splitlines(), 1):
        if not raw.strip() or raw.startswith("#"):
            continue
        if "\t" in raw or raw != raw.rstrip():
            raise refused("a tab or trailing whitespace", number)
        indent = len(raw) - len(raw.lstrip(" "))
        body = raw.strip()
        if indent == 0:
            if not body.endswith(":"):
                raise refused(f"an entry line {body[:80]!r} that does not end in ':'", number)
            keys = tuple(_tokens(body[:-1], number))
            if not keys:
                raise refused("an entry with no key", number)
            current, open_map = Entry(keys, number), None
            entries.append(current)
        elif indent == 2 and current is not None:
            tokens = _tokens(body[:-1] if body.endswith(":") else body, number)
            if body.endswith(":") and len(tokens) == 1:
                open_map = current.maps.setdefault(tokens[0], {})
            elif len(tokens) == 2:
                current.fields[tokens[0]], open_map = tokens[1], None
            else:
                raise refused(f"a field line {body[:80]!r}", number)
        elif indent == 4 and open_map is not None:
            tokens = _tokens(body, number)
            if len(tokens) != 2:
                raise refused(f"a dependency line {body[:80]!r}", number)
            open_map[tokens[0]] = tokens[1]
        else:
            raise refused(f"a line indented {indent} spaces where none is expected", number)
    return entries


def registry_tarball(url: str, hosts: tuple[str, ...] = HOSTS) -> bool:
    """An https tarball of the public registry; yarn's `#<sha1>` fragment allowed."""
    parts = urlsplit(url)
    return (
        parts.scheme == "https"
        and parts.netloc in hosts
        and parts.path.startswith("/")
        and ".." not in parts.path.split("/")
        and parts.path.endswith(".tgz")
        and not parts.query
        and re.fullmatch(r"[0-9a-f]{40}|", parts.fragment) is not None
    )


def check(data: bytes) -> int:
    """How many packages `yarn.lock` pins, or `ImageBuildError` with the reason it is
    refused (module docstring)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise refused("not UTF-8 text") from None
    entries = parse(text)
    for entry in entries:
        for key in entry.keys:
            name, wanted = split_key(key)
            if not NAME.fullmatch(name):
                raise refused(f"{key[:120]!r} is not a package name at a range", entry.line)
            if wanted.startswith(LOCAL):
                raise refused(f"{key[:120]!r} names a source other than the registry", entry.line)
        where = entry.keys[0][:120]
        if "version" not in entry.fields:
            raise refused(f"{where}: no `version`", entry.line)
        resolved = entry.fields.get("resolved")
        if resolved is None:
            raise refused(f"{where}: no `resolved` URL (a local folder?)", entry.line)
        if not registry_tarball(resolved):
            raise refused(f"{where}: resolved to {resolved[:160]!r}, not a tarball of the "
                          "public registry", entry.line)  # fmt: skip
        integrity = entry.fields.get("integrity", "")
        if not integrity.startswith(("sha512-", "sha384-")):
            raise refused(f"{where}: no sha512 `integrity` to check the tarball against",
                          entry.line)  # fmt: skip
    return len(entries)


def pins(data: bytes) -> list[tuple[str, str]]:
    """(name, version) of each entry, for the audit (`ImageBuildError` when unreadable)."""
    entries = parse(data.decode("utf-8", "replace"))
    return [(entry.name, entry.fields.get("version", "")) for entry in entries]
