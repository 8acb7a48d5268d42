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

# The base image the sandboxes start from: the one `karma setup` makes sure of (it pulls
# sandbox.base_image, or builds karma/base:<suite> where no registry answers; idempotent).
if [ -z "${KARMA_BASE_IMAGE:-}" ]; then
  KARMA_BASE_IMAGE=$("$karma" setup)
  export KARMA_BASE_IMAGE
fi
export KARMA_SCRIPT=${KARMA_SCRIPT:-$here/scripts/inventory-demo.yaml}

# The demo's change touches no dependency file, so the audit gate passes without asking
# any vulnerability service. To audit against an offline OSV folder (such as a local copy
# of the PyPA advisory database), name it in KARMA_ADVISORIES: KARMA serves it on loopback.
if [ -z "${KARMA_OSV_URL:-}" ] && [ -n "${KARMA_ADVISORIES:-}" ]; then
  "$karma" advisories serve "$KARMA_ADVISORIES" --port 0 > "$work/advisories.url" 2>/dev/null &
  server=$!
  trap 'kill $server 2>/dev/null || true' EXIT
  for _ in $(seq 1 100); do [ -s "$work/advisories.url" ] && break; sleep 0.1; done
  KARMA_OSV_URL=$(head -1 "$work/advisories.url")
  export KARMA_OSV_URL
fi

echo "demo repository: $work/inventory" >&2
"$karma" --config "$here/demo.karma.toml" build --json "$@" \
  "Add CSV export and a low-stock report with a command-line entry point"
