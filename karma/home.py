"""Where KARMA's data folders are found.

`recipes/`, `sandboxes/`, `quality_gates/` and `examples/` are data, read by exactly one
loader each. Each file or sub-folder is looked up in order: an explicit path,
`$KARMA_HOME/<name>`, the project's own `<repo>/.karma/<name>` (a team's overrides), then
the copy built into the package (the wheel ships it under `karma/_data/`; a source
checkout has it at the top).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

DataFolder = Literal["recipes", "sandboxes", "quality_gates", "examples"]

_PACKAGE = Path(__file__).resolve().parent


def builtin_dir(name: DataFolder) -> Path:
    """The copy of a data folder that ships with KARMA."""
    installed = _PACKAGE / "_data" / name
    if installed.is_dir():
        return installed
    return _PACKAGE.parent / name


def data_path(
    name: DataFolder, relative: str, *, explicit: Path | None = None, repo: Path | None = None
) -> Path:
    """`relative` inside the most specific copy of a data folder that has it.

    Overrides are per file or sub-folder: a project's `.karma/recipes/` may hold just
    `learned/`, or a `prices.toml`, and everything else still comes from the next place.
    """
    candidates: list[Path] = []
    if explicit is not None:
        candidates.append(explicit)
    if home := os.environ.get("KARMA_HOME"):
        candidates.append(Path(home) / name)
    if repo is not None:
        candidates.append(repo / ".karma" / name)
    for candidate in candidates:
        if (candidate / relative).exists():
            return candidate / relative
    return builtin_dir(name) / relative
