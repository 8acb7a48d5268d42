"""A project's dependency files turned into plain requirement specifiers, on the host.

The files are the target repository's, so untrusted: what reaches pip from them is only
`name[extras] specifier ; marker`, parsed with `packaging`. Everything else a
requirements file can say is dropped with a record of why: option lines (`-i`,
`--extra-index-url`, `-f`, `--trusted-host`, `-e`, `-r`/`-c` includes, ...), per-line
options (`--hash`, `--config-settings`), direct URLs (`pkg @ https://...`), VCS and
local paths, and `${VAR}` references (pip would expand them). Package indexes come only
from the user's own pip configuration (`karma.sandbox.wheelhouse`).

From `pyproject.toml`: `[project].dependencies`, the test extras (`test`, `tests`,
`testing`, `dev`), the PEP 735 `[dependency-groups]` of those names, and
`[build-system].requires` (so the project itself can be installed offline later). A
requirement on the project itself is dropped: the sandbox mounts it.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

TEST_EXTRAS = ("test", "tests", "testing", "dev")
SHOWN_CHARS = 120
"""A dropped line is recorded up to this length."""

_URL_OR_PATH = re.compile(r"://|^[./~\\]|^[a-z]+\+|\.(whl|zip|tar(\.\w+)?|tgz)\s*$", re.IGNORECASE)
_COMMENT = re.compile(r"(^|\s)#.*$")


@dataclass(frozen=True)
class Dropped:
    """One thing of a dependency file that never reaches pip, and why."""

    source: str
    """`requirements.txt:3`, or `pyproject.toml [project.dependencies]`."""
    text: str
    reason: str

    def line(self) -> str:
        return f"{self.source}: dropped `{self.text}`: {self.reason}"


@dataclass(frozen=True)
class Requirements:
    specifiers: tuple[str, ...]
    """Plain specifiers, deduplicated, in the order the files give them."""
    dropped: tuple[Dropped, ...]

    def text(self) -> str:
        """The one sanitized requirements file the download stage reads."""
        return "".join(f"{spec}\n" for spec in self.specifiers)


def _shown(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= SHOWN_CHARS else flat[: SHOWN_CHARS - 1] + "…"


def _specifier(text: str, source: str, own: str, dropped: list[Dropped]) -> str | None:
    """`text` as a plain specifier, or None with a record in `dropped`."""

    def drop(reason: str) -> str | None:
        dropped.append(Dropped(source, _shown(text), reason))
        return None

    if "${" in text:
        return drop("an environment variable reference (pip would expand it)")
    if text.startswith("-"):
        return drop("an option line: pip options come only from your own pip configuration")
    requirement, _, options = text.partition(" -")
    if options:
        dropped.append(Dropped(source, _shown("-" + options), "a per-requirement option"))
    requirement = requirement.strip()
    # pip takes `x-1.0.zip` for a file even though it parses as a name: look first.
    if _URL_OR_PATH.search(requirement.partition(";")[0].partition(" @ ")[0].strip()):
        return drop("a URL, VCS or local path: only names are looked up, on your index")
    try:
        parsed = Requirement(requirement)
    except InvalidRequirement:
        return drop("not a requirement specifier")
    if parsed.url is not None:
        return drop("a direct URL: only names are looked up, on your index")
    if own and canonicalize_name(parsed.name) == own:
        return drop("the project itself (the sandbox mounts it)")
    return str(parsed)


def _logical_lines(text: str) -> Iterable[tuple[int, str]]:
    """(first line number, line) with comments removed and `\\` continuations joined."""
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        if not pending:
            start = number
        line = _COMMENT.sub("", raw)
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = (pending + line).strip(), ""
        if line:
            yield start, line
    if pending.strip():
        yield start, pending.strip()


def _from_requirements(name: str, text: str, own: str, dropped: list[Dropped]) -> list[str]:
    found = []
    for number, line in _logical_lines(text):
        spec = _specifier(line, f"{name}:{number}", own, dropped)
        if spec is not None:
            found.append(spec)
    return found


def _strings(value: object, source: str, dropped: list[Dropped]) -> list[str]:
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return list(value)
    dropped.append(Dropped(source, _shown(repr(value)), "not a list of strings"))
    return []


def _groups(groups: Mapping[str, Any], dropped: list[Dropped]) -> list[tuple[str, str]]:
    """(source, requirement) of the PEP 735 groups named for tests, includes resolved."""
    by_name: dict[str, Any] = {canonicalize_name(str(k)): v for k, v in groups.items()}
    found: list[tuple[str, str]] = []

    def visit(name: str, seen: tuple[str, ...]) -> None:
        source = f"pyproject.toml [dependency-groups] {name}"
        entries = by_name.get(name)
        if not isinstance(entries, list):
            return
        for entry in entries:
            if isinstance(entry, str):
                found.append((source, entry))
            elif isinstance(entry, dict) and isinstance(entry.get("include-group"), str):
                included = canonicalize_name(entry["include-group"])
                if included in seen:
                    dropped.append(Dropped(source, included, "an include cycle"))
                else:
                    visit(included, (*seen, included))
            else:
                dropped.append(Dropped(source, _shown(repr(entry)), "not a requirement"))

    for extra in TEST_EXTRAS:
        visit(extra, (extra,))
    return found


EDITABLE_REQUIRES: Mapping[str, tuple[str, ...]] = {"hatchling.build": ("editables",)}
"""The backends' `get_requires_for_build_editable` beyond `requires`: the project is
installed editable without build isolation in a sandbox that has no network."""


def _from_pyproject(text: str, dropped: list[Dropped]) -> tuple[list[str], str]:
    """The project's requirements, and its own (canonical) name."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        dropped.append(Dropped("pyproject.toml", "the whole file", f"not valid TOML ({exc})"))
        return [], ""
    project = data.get("project", {}) if isinstance(data.get("project"), dict) else {}
    own = canonicalize_name(str(project.get("name", "")))
    wanted: list[tuple[str, str]] = []
    source = "pyproject.toml [project.dependencies]"
    wanted += [(source, s) for s in _strings(project.get("dependencies", []), source, dropped)]
    if "dependencies" in project.get("dynamic", []):
        dropped.append(Dropped(source, "dynamic", "dynamic dependencies need the build backend"))
    extras = project.get("optional-dependencies", {})
    extras = (
        {canonicalize_name(str(k)): v for k, v in extras.items()}
        if isinstance(extras, dict)
        else {}
    )
    for extra in TEST_EXTRAS:
        if extra in extras:
            source = f"pyproject.toml [project.optional-dependencies] {extra}"
            wanted += [(source, s) for s in _strings(extras[extra], source, dropped)]
    groups = data.get("dependency-groups", {})
    if isinstance(groups, dict):
        wanted += _groups(groups, dropped)
    build = data.get("build-system", {})
    if isinstance(build, dict) and "requires" in build:
        source = "pyproject.toml [build-system.requires]"
        wanted += [(source, s) for s in _strings(build["requires"], source, dropped)]
        backend = str(build.get("build-backend", ""))
        source = f"what {backend} asks for to build an editable install"
        wanted += [(source, s) for s in EDITABLE_REQUIRES.get(backend, ())]
    found = []
    for source, text_ in wanted:
        spec = _specifier(text_.strip(), source, own, dropped)
        if spec is not None:
            found.append(spec)
    return found, own


def sanitize(files: Mapping[str, str], extra: Iterable[str] = ()) -> Requirements:
    """The plain requirements of dependency files (`name` → text), plus `extra` ones.

    `requirements*.txt` and `pyproject.toml` are read; other names (lock files,
    `setup.py`) only decide the image's cache key.
    """
    dropped: list[Dropped] = []
    specifiers: list[str] = list(extra)
    project: list[str] = []
    own = ""
    if "pyproject.toml" in files:
        project, own = _from_pyproject(files["pyproject.toml"], dropped)
    for name in sorted(files):
        if name.startswith("requirements") and name.endswith(".txt"):
            specifiers += _from_requirements(name, files[name], own, dropped)
    specifiers += project
    return Requirements(tuple(dict.fromkeys(specifiers)), tuple(dropped))
