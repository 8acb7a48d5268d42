"""Print the requirements of a project from its dependency files, one per line.

Reads `requirements*.txt` (dropping editable and local-path lines, which would install
the project itself) and `[project.dependencies]` plus the test extras of
`pyproject.toml` (with tomllib: the project is never built or installed).
Runs inside the image build, on the base image's python3 (3.11+).
"""

import re
import sys
import tomllib
from pathlib import Path

TEST_EXTRAS = ("test", "tests", "testing", "dev")


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _from_requirements(path: Path) -> list[str]:
    kept = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith(("-e", "--editable", ".", "/", "file:")):
            continue
        if line.startswith(("-r", "-c", "--requirement", "--constraint")):
            target = line.split(None, 1)[-1] if " " in line else line[2:]
            if not (path.parent / target.strip()).is_file():
                continue
        kept.append(line)
    return kept


def _from_pyproject(path: Path) -> list[str]:
    project = tomllib.loads(path.read_text(encoding="utf-8")).get("project", {})
    own = _normal(str(project.get("name", "")))
    wanted = list(project.get("dependencies", []))
    extras = project.get("optional-dependencies", {})
    for extra in TEST_EXTRAS:
        wanted += extras.get(extra, [])
    # "myproject[test]" inside an extra would install the project itself.
    return [w for w in wanted if not own or _normal(re.split(r"[\s\[<>=!~;@(]", w, 1)[0]) != own]


def main(folder: str) -> None:
    root = Path(folder)
    lines: list[str] = []
    for path in sorted(root.glob("requirements*.txt")):
        lines += _from_requirements(path)
    if (root / "pyproject.toml").is_file():
        lines += _from_pyproject(root / "pyproject.toml")
    print("\n".join(dict.fromkeys(lines)))


if __name__ == "__main__":
    main(sys.argv[1])
