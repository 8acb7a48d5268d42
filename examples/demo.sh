#!/usr/bin/env bash
# KARMA's offline demo: a real build of a feature with the scripted model, real Docker
# sandboxes, real git and real tests. Usage:
#
#   examples/demo.sh [WORKDIR] [extra karma build options...]
#   KARMA_DEMO=dashboard examples/demo.sh [WORKDIR] [...]
#
# KARMA_DEMO picks the project: `inventory` (default; Python, no dependencies: it needs
# nothing outside this repository) or `dashboard` (TypeScript on Node: its image build
# fetches typescript and @types/node from the npm registry, pinned by its lockfile). It
# copies the example project into WORKDIR (default: a new temporary directory), makes it
# a git repository, and runs `karma build --json` there. The build branch, the run
# record (.karma/karma.db) and the HTML report stay in WORKDIR/<project>.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
work=${1:-$(mktemp -d "${TMPDIR:-/tmp}/karma-demo.XXXXXX")}
shift || true
karma=${KARMA:-karma}

demo=${KARMA_DEMO:-inventory}
case "$demo" in
  inventory) request="Add CSV export and a low-stock report with a command-line entry point" ;;
  dashboard) request="A user dashboard with real-time metrics: API endpoints, a dashboard component, WebSocket streaming and integration tests" ;;
  *) echo "KARMA_DEMO: no demo named $demo (inventory, dashboard)" >&2; exit 2 ;;
esac

rm -rf "${work:?}/$demo"
mkdir -p "$work"
cp -r "$here/$demo" "$work/$demo"
cd "$work/$demo"
git init -q -b main
git add -A
git -c user.name="KARMA demo" -c user.email=demo@localhost commit -qm "$demo: initial version"

# The base image the sandboxes start from: the one `karma setup` makes sure of (it pulls
# sandbox.base_image, or builds karma/base:<suite> where no registry answers; idempotent).
if [ -z "${KARMA_BASE_IMAGE:-}" ]; then
  KARMA_BASE_IMAGE=$("$karma" setup)
  export KARMA_BASE_IMAGE
fi
export KARMA_SCRIPT=${KARMA_SCRIPT:-$here/scripts/$demo-demo.yaml}

# No vulnerability service is reachable either. The demo's change touches no dependency
# file, so the audit gate passes without a query; a change that does is audited against
# the advisories shipped in examples/advisories (real PyPA entries, CC-BY 4.0), which KARMA
# serves on loopback. KARMA_ADVISORIES names another OSV folder (e.g. the whole database).
advisories=${KARMA_ADVISORIES:-$here/advisories}
if [ -z "${KARMA_OSV_URL:-}" ]; then
  "$karma" advisories serve "$advisories" --port 0 > "$work/advisories.url" 2>/dev/null &
  server=$!
  trap 'kill $server 2>/dev/null || true' EXIT
  for _ in $(seq 1 100); do [ -s "$work/advisories.url" ] && break; sleep 0.1; done
  KARMA_OSV_URL=$(head -1 "$work/advisories.url")
  export KARMA_OSV_URL
fi

echo "demo repository: $work/$demo" >&2
"$karma" --config "$here/demo.karma.toml" build --json "$@" "$request"
