"""The run store's schema: versioned (`PRAGMA user_version`), migrated forward on open.

A migration is appended, never edited: a store made by an older KARMA is brought up to
date by running the scripts it has not seen, in order.
"""

from __future__ import annotations

from collections.abc import Sequence

MIGRATIONS: Sequence[str] = (
    # 1: the initial schema
    """
    CREATE TABLE runs (
        id TEXT PRIMARY KEY, request TEXT NOT NULL, repo TEXT NOT NULL,
        status TEXT NOT NULL, branch TEXT, base_commit TEXT, head_commit TEXT,
        created_at TEXT NOT NULL, finished_at TEXT, cost_usd REAL NOT NULL DEFAULT 0,
        plan_json TEXT, config_json TEXT, report_path TEXT, reason TEXT, pid INTEGER,
        source TEXT
    );
    CREATE TABLE tasks (
        run_id TEXT NOT NULL REFERENCES runs(id), id TEXT NOT NULL,
        title TEXT NOT NULL, kind TEXT NOT NULL, status TEXT NOT NULL,
        tier TEXT, model TEXT, estimated_tokens INTEGER, calibrated_tokens INTEGER,
        attempts INTEGER NOT NULL DEFAULT 0, tokens_in INTEGER NOT NULL DEFAULT 0,
        tokens_out INTEGER NOT NULL DEFAULT 0, cost_usd REAL NOT NULL DEFAULT 0,
        started_at TEXT, finished_at TEXT, commit_sha TEXT, image TEXT,
        container_id TEXT, reason TEXT, routing_json TEXT, files_json TEXT,
        PRIMARY KEY (run_id, id)
    );
    CREATE TABLE attempts (
        id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, task_id TEXT NOT NULL,
        number INTEGER NOT NULL, model TEXT, tier TEXT, status TEXT NOT NULL,
        started_at TEXT NOT NULL, finished_at TEXT, failure_class TEXT, pattern_id TEXT,
        signature TEXT, remediation TEXT, evidence_json TEXT, summary TEXT,
        tokens_in INTEGER NOT NULL DEFAULT 0, tokens_out INTEGER NOT NULL DEFAULT 0,
        cost_usd REAL NOT NULL DEFAULT 0, container_id TEXT, branch TEXT,
        UNIQUE (run_id, task_id, number)
    );
    CREATE TABLE model_calls (
        id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT, task_id TEXT, attempt INTEGER,
        seq INTEGER NOT NULL, purpose TEXT NOT NULL, model TEXT NOT NULL,
        request_hash TEXT NOT NULL, request_json TEXT NOT NULL, reply_json TEXT,
        input_tokens INTEGER NOT NULL DEFAULT 0, output_tokens INTEGER NOT NULL DEFAULT 0,
        cache_read_tokens INTEGER NOT NULL DEFAULT 0,
        cache_write_tokens INTEGER NOT NULL DEFAULT 0,
        cost_usd REAL NOT NULL DEFAULT 0, latency_ms REAL NOT NULL DEFAULT 0,
        error TEXT, ts TEXT NOT NULL
    );
    CREATE INDEX model_calls_by_task ON model_calls (run_id, task_id, attempt, seq);
    CREATE TABLE steps (
        id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, task_id TEXT NOT NULL,
        attempt INTEGER NOT NULL, step INTEGER NOT NULL, tool TEXT NOT NULL,
        arguments_json TEXT NOT NULL, output TEXT NOT NULL, is_error INTEGER NOT NULL,
        ts TEXT NOT NULL
    );
    CREATE TABLE events (
        id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, task_id TEXT,
        kind TEXT NOT NULL, data_json TEXT NOT NULL, ts TEXT NOT NULL
    );
    CREATE INDEX events_by_run ON events (run_id, id);
    CREATE TABLE gate_results (
        id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, name TEXT NOT NULL,
        status TEXT NOT NULL, blocking INTEGER NOT NULL, duration_s REAL NOT NULL,
        findings_json TEXT NOT NULL, ts TEXT NOT NULL
    );
    CREATE TABLE failures (
        signature TEXT PRIMARY KEY, failure_class TEXT NOT NULL, pattern_id TEXT,
        first_seen TEXT NOT NULL, last_seen TEXT NOT NULL, count INTEGER NOT NULL,
        example TEXT NOT NULL, files_json TEXT NOT NULL DEFAULT '[]', kind TEXT,
        hint TEXT
    );
    CREATE TABLE remediation_outcomes (
        id INTEGER PRIMARY KEY AUTOINCREMENT, ts TEXT NOT NULL, run_id TEXT,
        task_id TEXT, pattern_id TEXT NOT NULL, failure_class TEXT NOT NULL,
        signature TEXT, remediation TEXT NOT NULL, outcome TEXT NOT NULL,
        seconds REAL NOT NULL DEFAULT 0, side_effects TEXT
    );
    CREATE INDEX outcomes_by_pattern ON remediation_outcomes (pattern_id, remediation);
    CREATE TABLE specs (
        key TEXT PRIMARY KEY, file TEXT NOT NULL, status TEXT NOT NULL, run_id TEXT,
        cost_usd REAL NOT NULL DEFAULT 0, reason TEXT, ts TEXT NOT NULL
    );
    """,
    # 2: steps and gate results found by run (replay, reports, retention)
    """
    CREATE INDEX steps_by_task ON steps (run_id, task_id, attempt);
    CREATE INDEX gate_results_by_run ON gate_results (run_id);
    CREATE INDEX runs_by_age ON runs (created_at);
    """,
    # 3: what a run waits for (an approval, an answer to an escalation) and the decisions
    """
    CREATE TABLE pending (
        id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, task_id TEXT,
        kind TEXT NOT NULL, detail_json TEXT NOT NULL, since TEXT NOT NULL,
        decision TEXT, decided_by TEXT, decided_at TEXT, note TEXT
    );
    CREATE INDEX pending_by_run ON pending (run_id, id);
    """,
    # 4: where a task's attempts ran (a Dask worker and its Docker engine)
    """
    ALTER TABLE tasks ADD COLUMN worker TEXT;
    ALTER TABLE tasks ADD COLUMN docker_host TEXT;
    ALTER TABLE attempts ADD COLUMN worker TEXT;
    ALTER TABLE attempts ADD COLUMN docker_host TEXT;
    """,
)

RUN_TABLES: Sequence[str] = (
    "pending", "steps", "events", "model_calls", "gate_results", "attempts", "tasks", "runs"
)  # fmt: skip
"""What a run owns, dependents first. The healing memory (`failures`,
`remediation_outcomes`) and the nightly `specs` outlive the runs they came from."""
