"""The ids that name a run's record: a run's, and a task's within its run."""

from __future__ import annotations

from typing import NewType

RunId = NewType("RunId", str)
"""A run's id (`runs.id`, and every `run_id` column of the run store)."""

TaskId = NewType("TaskId", str)
"""A task's id within its plan and its run (`tasks.id`, and every `task_id` column)."""
