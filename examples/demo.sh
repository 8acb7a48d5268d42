#!/usr/bin/env bash
# KARMA's offline demo: a real build of a feature on examples/inventory with the scripted
# model, real Docker sandboxes, real git and real tests. Usage:
#
#   examples/demo.sh [WORKDIR] [extra karma build options...]
#
# It copies the example project into WORKDIR (default: a new temporary directory), makes
# it a git repository, and runs `karma build --json` there. The build branch, the run
# record (.karma/karma.db) and the HTML report stay in WORKDIR/inventory.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
work=${1:-$(mktemp -d "${TMPDIR:-/tmp}/karma-demo.XXXXXX")}
shift || true
karma=${KARMA:-karma}

rm -rf "$work/inventory"
mkdir -p "$work"
cp -r "$here/inventory" "$work/inventory"
cd "$work/inventory"
git init -q -b main
git add -A
git -c user.name="KARMA demo" -c user.email=demo@localhost commit -qm "inventory: initial version"

# No registry is reachable here: sandboxes start from the image ../shared/docker/setup.sh
# builds, unless KARMA_BASE_IMAGE says otherwise.
export KARMA_BASE_IMAGE=${KARMA_BASE_IMAGE:-karma/base:bookworm}
export KARMA_SCRIPT=${KARMA_SCRIPT:-$here/scripts/inventory-demo.yaml}
echo "demo repository: $work/inventory" >&2
exec "$karma" --config "$here/demo.karma.toml" build --json "$@" \
  "Add CSV export and a low-stock report with a command-line entry point"
