"""KARMA: an autonomous build engine.

`karma build "feature spec"` plans a request into a task DAG, runs each task in its own
git worktree and Docker sandbox, heals failures, gates the integrated result and records
every decision. The package layout is the architecture: see README.md.
"""

__version__ = "0.1.0"
