"""``Task``: one task submitted declaratively; its status mirrors the engine's record."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import Field

from taskflow_operator.crd.base import (
    AGE,
    CONDITIONS_SCHEMA_EXTRA,
    Condition,
    CrdModel,
    Kind,
    PrinterColumn,
    cel,
)

NAME_PATTERN = r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,126}[A-Za-z0-9])?$"


class TaskSpec(CrdModel):
    """The task to submit (immutable once submitted)."""

    model_config = CrdModel.model_config | {
        "json_schema_extra": cel(
            (
                "!(has(self.delaySeconds) && has(self.runAt))",
                "give delaySeconds or runAt, not both",
            ),
            ("self == oldSelf", "spec is immutable: the task was submitted as it was"),
        )
    }

    queue: str = Field(pattern=NAME_PATTERN, description="A TaskQueue of this namespace")
    handler: str = Field(min_length=1, max_length=200, description="Registered handler name")
    payload: Any = Field(
        default=None,
        description="Any JSON value handed to the handler",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    priority: int = Field(default=0, ge=-1000, le=1000, description="Higher runs first")
    delay_seconds: float | None = Field(default=None, ge=0, le=31622400, description="Run later")
    run_at: datetime | None = Field(default=None, description="Run at this time (RFC 3339)")
    max_retries: int | None = Field(
        default=None, ge=0, le=1000, description="Defaults to the TaskQueue's retry.maxRetries"
    )
    timeout_seconds: float | None = Field(
        default=None, ge=0, le=604800, description="Defaults to the TaskQueue's"
    )
    ttl_seconds_after_finished: int | None = Field(
        default=None, ge=0, le=31622400, description="Delete the Task this long after it ends"
    )


class TaskPhase(StrEnum):
    PENDING = "Pending"
    SCHEDULED = "Scheduled"
    QUEUED = "Queued"
    RUNNING = "Running"
    RETRYING = "Retrying"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELLED = "Cancelled"


FINISHED_PHASES = frozenset({TaskPhase.SUCCEEDED, TaskPhase.FAILED, TaskPhase.CANCELLED})


class TaskStatus(CrdModel):
    """The engine's record of the task, mirrored (written by the operator only)."""

    phase: TaskPhase | None = Field(default=None, description="Where the task is")
    task_id: str | None = Field(default=None, description="The engine's task id")
    attempts: int = Field(default=0, description="Times a worker started it")
    result: Any = Field(
        default=None,
        description="What the handler returned",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    error: str | None = Field(default=None, description="Why the last attempt failed")
    start_time: str | None = Field(default=None, description="First start (RFC 3339)")
    completion_time: str | None = Field(default=None, description="End (RFC 3339)")
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Submitted (the engine accepted it) and Finished (it ended; the reason "
        "is the final phase)",
        json_schema_extra=CONDITIONS_SCHEMA_EXTRA,
    )


TASK = Kind(
    kind="Task",
    plural="tasks",
    spec=TaskSpec,
    status=TaskStatus,
    description="One TaskFlow task, submitted declaratively; status mirrors the engine",
    columns=(
        PrinterColumn("Queue", ".spec.queue", "string", priority=1),
        PrinterColumn("Phase", ".status.phase", "string"),
        PrinterColumn("Attempts", ".status.attempts"),
        AGE,
    ),
)
