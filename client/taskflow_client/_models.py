"""The typed values the client accepts and returns."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

__all__ = [
    "TERMINAL_STATES",
    "Attempt",
    "ConcurrencyPolicy",
    "QueueStats",
    "RetryPolicy",
    "Schedule",
    "Task",
    "TaskRequest",
    "TaskState",
]


class TaskState(enum.StrEnum):
    """The states of a task; members compare equal to the plain strings."""

    WAITING = "waiting"
    """a DAG step whose parents have not all succeeded yet"""
    SCHEDULED = "scheduled"
    QUEUED = "queued"
    RUNNING = "running"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL_STATES: frozenset[TaskState] = frozenset(
    {TaskState.SUCCEEDED, TaskState.FAILED, TaskState.CANCELLED}
)
"""States a task never leaves (until a dead-lettered task is replayed)."""


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff between attempts of one task: ``initial_seconds x multiplier^n``, capped at
    ``max_seconds`` (the server adds jitter). Leave ``retry`` unset to use the queue's."""

    initial_seconds: float
    multiplier: float
    max_seconds: float


@dataclass(frozen=True)
class TaskRequest:
    """One task to submit; the fields mean what the keyword arguments of ``Client.submit`` do."""

    queue: str
    handler: str
    payload: Any = None
    priority: int = 0
    delay: float | timedelta | None = None
    run_at: datetime | None = None
    max_retries: int | None = None
    timeout: float | timedelta | None = None
    idempotency_key: str | None = None
    concurrency_key: str | None = None
    concurrency_limit: int | None = None
    retry: RetryPolicy | None = None
    labels: Mapping[str, str] | None = None
    namespace: str | None = None


@dataclass(frozen=True)
class Attempt:
    """One execution attempt of a task."""

    number: int
    worker: str
    started_at: datetime | None
    finished_at: datetime | None
    outcome: str
    """``running succeeded failed timeout lost cancelled``"""
    error: str | None


@dataclass(frozen=True)
class Task:
    """A snapshot of a task as the server reported it.

    ``payload`` and ``result`` are the decoded JSON values (``None`` for JSON null or no
    result yet). Times are timezone-aware UTC datetimes, ``None`` when not reached yet.
    ``timeout`` is in seconds, ``None`` when the task has none. ``attempt_history`` is only
    filled by ``get``.
    """

    id: str
    namespace: str
    queue: str
    handler: str
    state: TaskState
    payload: Any = None
    result: Any = None
    error: str | None = None
    traceback: str | None = None
    priority: int = 0
    attempts: int = 0
    max_retries: int = 0
    timeout: float | None = None
    idempotency_key: str | None = None
    concurrency_key: str | None = None
    created_at: datetime | None = None
    run_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    updated_at: datetime | None = None
    progress: float = 0.0
    progress_message: str | None = None
    attempt_history: tuple[Attempt, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        """Whether the task reached a terminal state (succeeded, failed or cancelled)."""
        return self.state in TERMINAL_STATES


@dataclass(frozen=True)
class QueueStats:
    """Counters of one queue."""

    namespace: str
    queue: str
    ready: int = 0
    """waiting to be claimed now"""
    scheduled: int = 0
    """delayed or waiting for a retry"""
    running: int = 0
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0
    dead_letters: int = 0


# -- schedules --------------------------------------------------------------------------------


class ConcurrencyPolicy(enum.StrEnum):
    """What a tick does while the previous fire's task is unfinished, as a Kubernetes CronJob:
    ``ALLOW`` fires anyway, ``FORBID`` skips the tick, ``REPLACE`` cancels that task first."""

    ALLOW = "Allow"
    FORBID = "Forbid"
    REPLACE = "Replace"


@dataclass(frozen=True)
class Schedule:
    """A cron schedule as the server reported it, with what its scheduler did.

    ``task`` is what each tick submits, or ``dag`` the run it starts (both ``None`` for a kind
    of target this client does not know). ``next_fire_time`` is ``None`` while suspended and
    in the past while no scheduler runs; ``last_fire_time`` is the tick of the latest fire.
    Times are timezone-aware UTC.
    """

    namespace: str
    name: str
    cron: str
    timezone: str = "UTC"
    task: TaskRequest | None = None
    #: A DAG schedule's run: ``{"queue", "steps" (Step values), "failure_policy", ...}``.
    dag: Mapping[str, Any] | None = None
    concurrency_policy: ConcurrencyPolicy = ConcurrencyPolicy.ALLOW
    suspend: bool = False
    starting_deadline_seconds: int | None = None
    owner: str | None = None
    id: str = ""
    next_fire_time: datetime | None = None
    last_fire_time: datetime | None = None
    last_task_id: str | None = None
    fire_count: int = 0
    skip_count: int = 0
    last_skip_time: datetime | None = None
    last_skip_reason: str | None = None
    last_fired_at: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
