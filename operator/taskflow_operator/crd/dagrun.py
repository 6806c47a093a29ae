"""``DagRun``: one DAG run submitted declaratively; its status mirrors the engine's run.

The spec has the shape of a DAG file (``taskflow dag submit FILE``), spelled in camelCase:
a default queue, a failure policy and named steps with ``dependsOn``. The API server checks
what a schema can (names, bounds, unique step names); the operator checks the graph (unknown
dependencies, cycles) and reports what it refuses as a condition and an Event.
"""

from __future__ import annotations

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
#: Most steps one DagRun object may have (an object is stored whole in etcd; bigger runs go
#: through the API, which takes up to 10,000).
MAX_STEPS = 1000
MAX_PARENTS = 1000
IMMUTABLE = cel(("self == oldSelf", "is immutable: the run was submitted as it was"))


class FailurePolicy(StrEnum):
    FAIL_FAST = "fail_fast"
    CONTINUE = "continue"


class DagStep(CrdModel):
    """One step: a task that runs once every step it depends on has succeeded."""

    name: str = Field(
        pattern=NAME_PATTERN,
        description="Unique within the run; other steps name it in dependsOn, and its "
        "handler finds this step's result under this name",
    )
    handler: str = Field(min_length=1, max_length=200, description="Registered handler name")
    payload: Any = Field(
        default=None,
        description="Any JSON value handed to the handler",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    queue: str | None = Field(
        default=None,
        pattern=NAME_PATTERN,
        description="Queue the step runs on (a TaskQueue of this namespace); defaults to "
        "spec.queue",
    )
    priority: int = Field(default=0, ge=-1000, le=1000, description="Higher runs first")
    max_retries: int | None = Field(
        default=None, ge=0, le=1000, description="Retries after a failure; defaults to the queue's"
    )
    timeout_seconds: float | None = Field(
        default=None,
        ge=0,
        le=604800,
        description="Time limit of one attempt; defaults to the queue's",
    )
    depends_on: list[str] = Field(
        default_factory=list,
        max_length=MAX_PARENTS,
        description="Steps that must succeed before this one starts",
        json_schema_extra={
            "x-kubernetes-list-type": "set",
            "items": {"type": "string", "maxLength": 128},
        },
    )


class DagRunSpec(CrdModel):
    """The run: its steps, default queue and failure policy; cancel and retry controls."""

    queue: str = Field(
        pattern=NAME_PATTERN,
        description="Default queue of the steps (a TaskQueue of this namespace)",
        json_schema_extra=IMMUTABLE,
    )
    failure_policy: FailurePolicy = Field(
        default=FailurePolicy.FAIL_FAST,
        description="fail_fast: a step that fails after its retries cancels every step not "
        "started and the run fails; continue: independent branches run to the end and the run "
        "fails listing its failed steps",
        json_schema_extra=IMMUTABLE,
    )
    steps: list[DagStep] = Field(
        min_length=1,
        max_length=MAX_STEPS,
        description="The steps of the run and their dependencies (no cycles)",
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["name"],
            **IMMUTABLE,
        },
    )
    cancel: bool = Field(
        default=False,
        description="Set to true to cancel the run: steps not started never run, running "
        "ones are stopped",
    )
    retry_generation: int = Field(
        default=0,
        ge=0,
        description="Increase to run a failed or cancelled run again from the steps that did "
        "not succeed (succeeded steps keep their results); status.observedRetryGeneration "
        "says which retry was applied",
    )
    ttl_seconds_after_finished: int | None = Field(
        default=None,
        ge=0,
        le=31622400,
        description="Delete the DagRun this long after it ends",
    )


class DagRunPhase(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELLED = "Cancelled"


FINISHED_RUN_PHASES = frozenset({DagRunPhase.SUCCEEDED, DagRunPhase.FAILED, DagRunPhase.CANCELLED})


class StepPhase(StrEnum):
    WAITING = "Waiting"
    SCHEDULED = "Scheduled"
    QUEUED = "Queued"
    RUNNING = "Running"
    RETRYING = "Retrying"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELLED = "Cancelled"
    SKIPPED = "Skipped"


class StepStatus(CrdModel):
    """One step as the engine records it."""

    name: str = Field(description="The step's name")
    phase: StepPhase = Field(
        description="Waiting (for its parents), Queued, Running, Retrying, Succeeded, Failed, "
        "Cancelled or Skipped (it never ran: a parent did not succeed, or the run failed fast)"
    )
    task_id: str | None = Field(default=None, description="The engine's id of the step's task")
    attempts: int = Field(default=0, description="Times a worker started it")
    start_time: str | None = Field(default=None, description="First start (RFC 3339)")
    completion_time: str | None = Field(default=None, description="End (RFC 3339)")
    error: str | None = Field(default=None, description="Why it failed (shortened)")


class StepCounts(CrdModel):
    """How many steps are in each phase."""

    total: int = Field(default=0, description="Steps of the run")
    done: int = Field(default=0, description="Steps that ended (in any way, skipped included)")
    waiting: int = Field(default=0, description="Steps waiting for their parents")
    queued: int = Field(default=0, description="Steps ready for a worker")
    running: int = Field(default=0, description="Steps being run (or between retries)")
    succeeded: int = Field(default=0, description="Steps that succeeded")
    failed: int = Field(default=0, description="Steps that failed after their retries")
    cancelled: int = Field(default=0, description="Steps stopped while running")
    skipped: int = Field(default=0, description="Steps that never ran")


class DagRunStatus(CrdModel):
    """The run as the engine records it (written by the operator)."""

    phase: DagRunPhase | None = Field(
        default=None,
        description="Pending (not submitted yet), Running, Succeeded, Failed or Cancelled",
    )
    run_id: str | None = Field(default=None, description="The engine's id of the run")
    progress: str | None = Field(default=None, description="Steps done / steps in the run")
    counts: StepCounts | None = Field(default=None, description="Steps by phase")
    steps: list[StepStatus] = Field(
        default_factory=list,
        description="Each step's phase, attempts and times, in the order of spec.steps",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    failed_steps: list[str] = Field(
        default_factory=list, description="Steps that failed after their retries"
    )
    skipped_steps: list[str] = Field(
        default_factory=list,
        description="Steps that never ran because a parent did not succeed or the run ended",
    )
    start_time: str | None = Field(default=None, description="When the run was submitted")
    completion_time: str | None = Field(default=None, description="When the run ended")
    observed_retry_generation: int = Field(
        default=0, description="The spec.retryGeneration last applied"
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Submitted (the engine accepted the run) and Finished",
        json_schema_extra=CONDITIONS_SCHEMA_EXTRA,
    )


DAGRUN = Kind(
    kind="DagRun",
    plural="dagruns",
    spec=DagRunSpec,
    status=DagRunStatus,
    description="One TaskFlow DAG run, submitted declaratively; status mirrors the engine",
    short_names=("dr",),
    columns=(
        PrinterColumn("Phase", ".status.phase", "string"),
        PrinterColumn("Steps", ".status.progress", "string", "Steps done / steps in the run"),
        PrinterColumn("Succeeded", ".status.counts.succeeded"),
        PrinterColumn("Failed", ".status.counts.failed"),
        PrinterColumn("Queue", ".spec.queue", "string", priority=1),
        PrinterColumn("Run", ".status.runId", "string", priority=1),
        AGE,
    ),
)
