#!/bin/sh
# The go command of the Go stack image (sandboxes/go/Dockerfile): GOTMPDIR made first,
# where it can be (go refuses a missing one), then Debian's go with the same arguments.
[ -n "$GOTMPDIR" ] && mkdir -p "$GOTMPDIR" 2>/dev/null
exec /usr/bin/go "$@"
