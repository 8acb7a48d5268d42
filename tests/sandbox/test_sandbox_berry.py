"""A yarn 4 ("berry") `yarn.lock`: the host's rules on it.

The fixture's lockfile was made by yarn 4.18.1 (tests/sandbox/fixtures/node-berry/README.md)
and holds yarn's built-in TypeScript patch, as any berry project with TypeScript does. A
source other than the registry fails on the host before anything is built. The real
build — `.yarnrc.yml`, `.yarn/` and `packageManager` planted to point at a loopback
canary and a yarn binary of the tree's, never read — is with yarn 1's and pnpm's in
`test_sandbox_yarn_pnpm.py`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from karma.gates.npmaudit import pins_of
from karma.sandbox.berrylock import YARN_BERRY
from karma.sandbox.interface import ImageBuildError
from karma.sandbox.npm import check_lockfile, manager_of

BERRY = Path(__file__).parent / "fixtures" / "node-berry"
LOCK = (BERRY / "yarn.lock").read_text()
MANIFEST = (BERRY / "package.json").read_bytes()
MS = '"ms@npm:^2.1.3":\n  version: 2.1.3\n  resolution: "ms@npm:2.1.3"'


def _files(text: str, manifest: bytes = MANIFEST) -> dict[str, bytes]:
    return {"package.json": manifest, "yarn.lock": text.encode()}


def test_the_berry_lockfile_yarn_made_is_accepted_with_its_builtin_patch() -> None:
    assert manager_of(_files(LOCK)) == ("berry", "yarn.lock")
    assert check_lockfile(_files(LOCK)) == 6  # five packages and typescript's built-in patch
    assert ("ms", "2.1.3") in pins_of("yarn.lock", LOCK)
    assert ("typescript", "5.9.3") in pins_of("yarn.lock", LOCK)


@pytest.mark.parametrize(
    ("old", "new", "reason"),
    [
        (MS, MS.replace("ms@npm:2.1.3", "ms@https://evil.example/ms.tgz"), "resolved to"),
        (MS, MS.replace("ms@npm:2.1.3", "ms@git+ssh://git@github.com/e/ms.git#commit=ab"),
         "resolved to"),
        (MS, MS.replace("ms@npm:2.1.3", "ms@file:../outside#../outside::hash=1"), "resolved to"),
        (MS, MS.replace("ms@npm:2.1.3", "ms@portal:../../outside::locator=x"), "resolved to"),
        (MS, MS.replace("ms@npm:2.1.3", "ms@link:../../etc::locator=x"), "resolved to"),
        (MS, MS.replace("ms@npm:2.1.3", "ms@exec:./evil.js#./evil.js::hash=1"), "resolved to"),
        (MS, MS.replace("ms@npm:2.1.3", "ms@workspace:packages/ms"), "yarn workspaces"),
        (MS, MS.replace("ms@npm:2.1.3",
                        "ms@patch:ms@npm%3A2.1.3#./.yarn/patches/ms.patch::version=2.1.3&hash=1"),
         "resolved to"),
        ('"ms@npm:^2.1.3":', '"ms@git@github.com:e/ms.git":', "names a source other"),
        ('"ms@npm:^2.1.3":', '"../../evil@npm:^2.1.3":', "names a source other"),
        ("  checksum: 10c0/d924", "  checksum: 8/d924", "no 10c0 `checksum`"),
        ("  cacheKey: 10c0", "  cacheKey: 8", "cache key '8'"),
        ("  version: 10\n", "  version: 8\n", "lockfile version 8"),
        ("__metadata:", "x: &a [1]\ny: *a\n__metadata:", "a YAML alias"),
    ],
)  # fmt: skip
def test_a_berry_lockfile_from_anywhere_but_the_public_registry_is_refused(
    old: str, new: str, reason: str
) -> None:
    assert old in LOCK
    with pytest.raises(ImageBuildError, match=re.escape("yarn.lock refused")) as caught:
        check_lockfile(_files(LOCK.replace(old, new)))
    assert reason in str(caught.value), str(caught.value)
    assert f"yarn {YARN_BERRY}" in (caught.value.tip or "")


def test_yarn_workspaces_are_refused_with_the_reason() -> None:
    manifest = json.loads(MANIFEST) | {"workspaces": ["packages/*"]}
    with pytest.raises(ImageBuildError, match=re.escape("package.json refused: `workspaces`")):
        check_lockfile(_files(LOCK, json.dumps(manifest).encode()))
