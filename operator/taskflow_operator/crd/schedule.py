"""Cron schedules declared on a ``TaskQueue`` (``spec.schedules``) and how they show in its
status. The operator keeps the engine's schedules of the queue equal to this list."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import Field

from taskflow_operator.crd.base import CrdModel, cel
from taskflow_operator.crd.dagrun import MAX_STEPS, NAME_PATTERN, DagStep, FailurePolicy

MAX_SCHEDULES = 100


class ConcurrencyPolicy(StrEnum):
    ALLOW = "Allow"
    FORBID = "Forbid"
    REPLACE = "Replace"


class ScheduledTask(CrdModel):
    """The task each tick submits to this queue."""

    handler: str = Field(min_length=1, max_length=200, description="Registered handler name")
    payload: Any = Field(
        default=None,
        description="Any JSON value handed to the handler",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    priority: int = Field(default=0, ge=-1000, le=1000, description="Higher runs first")
    max_retries: int | None = Field(
        default=None, ge=0, le=1000, description="Defaults to the queue's retry.maxRetries"
    )
    timeout_seconds: float | None = Field(
        default=None, ge=0, le=604800, description="Defaults to the queue's taskTimeoutSeconds"
    )


class ScheduledDag(CrdModel):
    """The DAG run each tick submits (the spec of a DagRun; steps default to this queue)."""

    failure_policy: FailurePolicy = Field(
        default=FailurePolicy.FAIL_FAST, description="fail_fast or continue (as a DagRun's)"
    )
    steps: list[DagStep] = Field(
        min_length=1,
        max_length=MAX_STEPS,
        description="The steps of each run and their dependencies (no cycles)",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )


class QueueSchedule(CrdModel):
    """A cron schedule that fires a task or a DAG run on this queue."""

    model_config = CrdModel.model_config | {
        "json_schema_extra": cel(
            ("has(self.task) != has(self.dag)", "give exactly one of task or dag"),
        )
    }

    name: str = Field(
        pattern=NAME_PATTERN,
        max_length=64,
        description="Unique among the queue's schedules; the engine's schedule is named "
        "<queue>.<name>",
    )
    cron: str = Field(
        min_length=9,
        max_length=200,
        description="Standard 5-field cron expression, e.g. '0 3 * * *'",
    )
    timezone: str = Field(
        default="UTC", min_length=1, max_length=64, description="IANA time zone of the cron"
    )
    concurrency_policy: ConcurrencyPolicy = Field(
        default=ConcurrencyPolicy.ALLOW,
        description="While the previous fire has not finished: Allow fires anyway, Forbid "
        "skips the tick, Replace cancels the previous one first",
    )
    suspend: bool = Field(default=False, description="Fire nothing while true")
    starting_deadline_seconds: int | None = Field(
        default=None,
        ge=1,
        le=31622400,
        description="A tick missed by more than this is skipped rather than fired late",
    )
    task: ScheduledTask | None = Field(default=None, description="Fire a task")
    dag: ScheduledDag | None = Field(default=None, description="Fire a whole DAG run")


class ScheduleStatus(CrdModel):
    """One declared schedule as the engine has it."""

    name: str = Field(description="The name in spec.schedules")
    schedule: str | None = Field(default=None, description="The engine's schedule name")
    synced: bool = Field(default=False, description="The engine has the schedule as declared")
    message: str | None = Field(default=None, description="Why it is not synced")
    next_fire_time: str | None = Field(
        default=None, description="When it fires next (RFC 3339; none while suspended)"
    )
    last_fire_time: str | None = Field(
        default=None, description="The tick it last fired (RFC 3339)"
    )
    last_fired_id: str | None = Field(
        default=None, description="The task or DAG run the last fire submitted"
    )
    fires: int = Field(default=0, description="Ticks fired")
    skips: int = Field(default=0, description="Ticks skipped (Forbid, starting deadline)")


SCHEDULES_FIELD: Any = Field(
    default_factory=list,
    max_length=MAX_SCHEDULES,
    description="Cron schedules firing tasks or DAG runs on this queue; the operator keeps "
    "the engine's schedules of the queue equal to this list",
    json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
)
SCHEDULES_STATUS_FIELD: Any = Field(
    default_factory=list,
    description="Each declared schedule: synced or why not, next and last fire time",
    json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
)
