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

# No vulnerability service is reachable either: the audit gate asks an OSV endpoint that
# KARMA serves on loopback from an offline copy of the PyPA advisory database.
advisories=${KARMA_ADVISORIES:-$here/../../shared/advisories/pypa-advisory-database}
if [ -z "${KARMA_OSV_URL:-}" ] && [ -d "$advisories" ]; then
  "$karma" advisories serve "$advisories" --port 0 > "$work/advisories.url" 2>/dev/null &
  server=$!
  trap 'kill $server 2>/dev/null || true' EXIT
  for _ in $(seq 1 100); do [ -s "$work/advisories.url" ] && break; sleep 0.1; done
  KARMA_OSV_URL=$(head -1 "$work/advisories.url")
  export KARMA_OSV_URL
fi

echo "demo repository: $work/inventory" >&2
"$karma" --config "$here/demo.karma.toml" build --json "$@" \
  "Add CSV export and a low-stock report with a command-line entry point"
