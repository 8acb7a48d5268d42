"""Installing the project under test in a sandbox, as its own tests expect it installed.

A `src/` layout only imports once the project is installed, a build backend may generate
a module at install time (hatch-vcs's `_version.py`), and tests read the installed
metadata (`importlib.metadata.version`). So each sandbox that runs the project's code
installs the workspace's project once, editable, with no network and no dependencies
(the image already holds them and the build backend), into a prefix on the sandbox's own
scratch tmpfs: `/opt/venv` stays read-only and nothing outlives the sandbox.

The sandbox has no `.git`, so a VCS-versioned backend is given a version
(`SETUPTOOLS_SCM_PRETEND_VERSION`, which hatch-vcs reads too, and `PDM_BUILD_SCM_VERSION`).

Python finds the install through `PYTHONPATH` (`sandbox.FIXED_ENV`), which names a folder
holding a `sitecustomize.py` that adds the prefix's site-packages as a site directory
(its `.pth` files included). The tests gate runs `python -I`, which ignores both: it is
given the site-packages folder and the plain path lines of the `.pth` files instead
(`InstallOutcome.paths`), never their `import` lines, so nothing a build wrote runs
before pytest is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass

from karma.sandbox import SCRATCH
from karma.sandbox.interface import ExecResult, Sandbox

PREFIX = f"{SCRATCH}/karma-site"
BOOT = f"{PREFIX}/boot"
"""On the sandbox's `PYTHONPATH`: holds the `sitecustomize.py` the install writes."""
PATHS_MARK = "karma-site-path:"
NOT_A_PROJECT = 3
"""The install script's exit code when the workspace has nothing to install."""
VERSION = "0.0.0"

# Runs in the sandbox. Finds the site-packages pip made under the prefix, writes the
# sitecustomize that adds it, and prints it and each absolute path line of its .pth files.
_AFTER = f"""
import glob, os, sys
site = glob.glob("{PREFIX}/lib/python*/site-packages")
if not site:
    sys.exit("no site-packages under {PREFIX}")
os.makedirs("{BOOT}", exist_ok=True)
with open("{BOOT}/sitecustomize.py", "w") as out:
    out.write("import site\\nsite.addsitedir(%r)\\n" % site[0])
print("{PATHS_MARK}" + site[0])
for pth in sorted(glob.glob(site[0] + "/*.pth")):
    for line in open(pth, encoding="utf-8", errors="replace"):
        line = line.strip()
        if line.startswith("/") and not line.startswith(("import ", "import\\t")):
            print("{PATHS_MARK}" + line)
"""


def install_command(version: str = VERSION, *, deps: bool = False) -> str:
    """The shell command that installs the workspace's project (exit 3: nothing to install).

    `deps`: also install what it needs and `/opt/venv` lacks, from the image's wheels
    (the stack image sets `PIP_FIND_LINKS`); nothing else is reachable."""
    has_project = (
        "{ [ -f setup.py ] || { [ -f pyproject.toml ] && "
        "grep -q '^\\[build-system\\]' pyproject.toml; }; }"
    )
    pip = (
        f"SETUPTOOLS_SCM_PRETEND_VERSION={version} PDM_BUILD_SCM_VERSION={version} "
        "PIP_NO_INDEX=1 python -m pip install -q --no-index --no-build-isolation "
        f"{'' if deps else '--no-deps '}"
        f"--no-warn-script-location --prefix {PREFIX} -e ."
    )
    return f"if {has_project}; then {pip} && python -c '{_AFTER}'; else exit {NOT_A_PROJECT}; fi"


@dataclass(frozen=True)
class InstallOutcome:
    """What installing the project did; `result` None when there was nothing to install."""

    command: str
    result: ExecResult | None
    paths: tuple[str, ...] = ()
    """The site-packages folder and the `.pth` path lines, for an isolated `python -I`."""

    @property
    def ok(self) -> bool:
        return self.result is None or self.result.ok

    @property
    def detail(self) -> str:
        if self.result is None:
            return "no Python project to install"
        state = "installed" if self.ok else f"failed (exit {self.result.exit_code})"
        return f"installing the project: {state}"


def install_project(
    sandbox: Sandbox, *, workdir: str = "/workspace", timeout_s: float = 300.0, deps: bool = False
) -> InstallOutcome:
    """Install the workspace's project in `sandbox` (see the module docstring)."""
    command = install_command(deps=deps)
    result = sandbox.exec(command, timeout_s=timeout_s, workdir=workdir)
    if result.exit_code == NOT_A_PROJECT and result.limit is None:
        return InstallOutcome(command, None)
    if not result.ok:
        return InstallOutcome(command, result)
    # Only paths inside the sandbox's workspace or the prefix: the lines came from files a
    # build backend of the project wrote.
    root = workdir.rstrip("/")
    allowed = (f"{root}/", f"{PREFIX}/")
    paths = [
        line.removeprefix(PATHS_MARK)
        for line in result.output.splitlines()
        if line.startswith(PATHS_MARK)
    ]
    inside = [p for p in paths if (p == root or p.startswith(allowed)) and ".." not in p]
    return InstallOutcome(command, result, tuple(dict.fromkeys(inside)))
