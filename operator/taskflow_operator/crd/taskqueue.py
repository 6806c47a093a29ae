"""``TaskQueue``: a queue's workers (a Deployment the operator owns) and how they scale."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import Field

from taskflow_operator.crd.base import (
    AGE,
    CONDITIONS_SCHEMA_EXTRA,
    Condition,
    CrdModel,
    Kind,
    PrinterColumn,
    cel,
    nested,
)
from taskflow_operator.crd.schedule import SCHEDULES_FIELD, SCHEDULES_STATUS_FIELD, QueueSchedule
from taskflow_operator.crd.schedule import ScheduleStatus as QueueScheduleStatus

APP_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_.]*$"


class Replicas(CrdModel):
    model_config = CrdModel.model_config | {
        "json_schema_extra": cel(("self.min <= self.max", "replicas.min must not exceed max"))
    }

    min: int = Field(default=0, ge=0, le=1000, description="Fewest pods (0: scale to zero)")
    max: int = Field(default=10, ge=1, le=1000, description="Most pods")


class AutoscalingEngine(StrEnum):
    BUILTIN = "builtin"
    KEDA = "keda"


class Autoscaling(CrdModel):
    target_per_pod: int | None = Field(
        default=None,
        ge=1,
        le=100000,
        description="Backlog (ready + running + due delayed tasks) one pod should carry; "
        "defaults to concurrency",
    )
    scale_down_stabilization_seconds: float = Field(
        default=60.0,
        ge=0,
        le=86400,
        description="Scale down only to the highest replica count wanted during this window",
    )
    poll_interval_seconds: float = Field(
        default=5.0, ge=0.2, le=3600, description="How often the backlog is read"
    )
    engine: AutoscalingEngine = Field(
        default=AutoscalingEngine.BUILTIN,
        description="builtin: the operator scales the Deployment; keda: it emits a KEDA "
        "ScaledObject instead",
    )


class RetryDefaults(CrdModel):
    max_retries: int = Field(default=3, ge=0, le=1000, description="Retries after a failure")
    initial_seconds: float = Field(default=1.0, ge=0, le=86400, description="First backoff")
    multiplier: float = Field(default=2.0, ge=1, le=100, description="Backoff growth")
    max_seconds: float = Field(default=300.0, ge=0, le=604800, description="Backoff cap")


class RateLimit(CrdModel):
    per_second: float = Field(gt=0, le=1_000_000, description="Tasks started per second")
    burst: int = Field(default=1, ge=1, le=1_000_000, description="Tasks allowed at once")


#: A Kubernetes resource quantity (``100m``, ``256Mi``, ``1.5``, ``2e3``), as core/v1 checks it.
QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
Quantity = int | Annotated[str, Field(pattern=QUANTITY_PATTERN, max_length=64)]
#: What core/v1 accepts as an environment variable name.
ENV_NAME_PATTERN = r"^[-._a-zA-Z][-._a-zA-Z0-9]*$"
#: A Kubernetes object name (DNS-1123 subdomain), e.g. a ServiceAccount's.
OBJECT_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
#: The operator sets these from ``connection.secretName``.
RESERVED_ENV = ("TASKFLOW_REDIS_URL", "TASKFLOW_DATABASE_URL")
#: ``<name>-workers`` names the Deployment (and KEDA's ScaledObject, whose name KEDA writes
#: into a label of at most 63 characters), so a TaskQueue's name has at most 55.
MAX_NAME_LENGTH = 55


class Resources(CrdModel):
    requests: dict[str, Quantity] | None = Field(
        default=None, description="Minimum resources per worker pod, e.g. cpu: 100m"
    )
    limits: dict[str, Quantity] | None = Field(
        default=None, description="Maximum resources per worker pod, e.g. memory: 256Mi"
    )


class EnvVar(CrdModel):
    model_config = CrdModel.model_config | {
        "json_schema_extra": cel(
            ("!(has(self.value) && has(self.valueFrom))", "give value or valueFrom, not both")
        )
    }

    name: str = Field(
        min_length=1,
        max_length=256,
        pattern=ENV_NAME_PATTERN,
        description="Variable name (letters, digits, '_', '-' and '.'; not starting with a digit)",
    )
    value: str | None = Field(default=None, description="Literal value")
    value_from: dict[str, Any] | None = Field(
        default=None,
        description="A core/v1 EnvVarSource (secretKeyRef, configMapKeyRef, fieldRef, ...)",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )


class Connection(CrdModel):
    secret_name: str = Field(
        min_length=1,
        max_length=253,
        description="Secret in this namespace with the keys redisUrl and databaseUrl",
    )


class PullPolicy(StrEnum):
    ALWAYS = "Always"
    IF_NOT_PRESENT = "IfNotPresent"
    NEVER = "Never"


class TaskQueueSpec(CrdModel):
    """What the queue's workers run and how many of them there are."""

    image: str = Field(min_length=1, description="Worker image (has taskflow and the app)")
    app: str = Field(pattern=APP_PATTERN, description="module:object of the handlers' Router")
    concurrency: int = Field(default=10, ge=1, le=10000, description="Tasks run at once per pod")
    replicas: Replicas = nested(Replicas, "Bounds of the worker Deployment's size")
    autoscaling: Autoscaling = nested(Autoscaling, "How the backlog drives the replica count")
    retry: RetryDefaults = nested(RetryDefaults, "Defaults for Tasks that do not set their own")
    rate_limit: RateLimit | None = Field(default=None, description="Queue-wide start rate")
    task_timeout_seconds: float = Field(
        default=0.0, ge=0, le=604800, description="Default task timeout (0: none)"
    )
    resources: Resources | None = Field(default=None, description="Worker container resources")
    env: list[EnvVar] = Field(
        default_factory=list,
        max_length=100,
        description="Extra worker environment (not TASKFLOW_REDIS_URL or "
        "TASKFLOW_DATABASE_URL: those come from connection.secretName)",
        json_schema_extra=cel(
            (
                "self.all(e, !(e.name in " + str(list(RESERVED_ENV)).replace("'", '"') + "))",
                "TASKFLOW_REDIS_URL and TASKFLOW_DATABASE_URL come from connection.secretName",
            )
        ),
    )
    image_pull_policy: PullPolicy = Field(
        default=PullPolicy.IF_NOT_PRESENT, description="Always, IfNotPresent or Never"
    )
    termination_grace_period_seconds: int = Field(
        default=30,
        ge=5,
        le=86400,
        description="Pod grace period; workers drain for 5 s less than this",
    )
    connection: Connection = Field(description="Where the workers find Redis and PostgreSQL")
    service_account_name: str | None = Field(
        default=None,
        max_length=253,
        pattern=OBJECT_NAME_PATTERN,
        description=(
            "ServiceAccount of the worker pods (default: the namespace's default); give each "
            "queue its own to scope what its handlers may reach (cloud IAM bindings, RBAC)"
        ),
    )
    automount_service_account_token: bool = Field(
        default=False,
        description=(
            "Mount the ServiceAccount's API token in worker pods (only for handlers that call "
            "the Kubernetes API)"
        ),
    )
    schedules: list[QueueSchedule] = SCHEDULES_FIELD

    @property
    def target_per_pod(self) -> int:
        return self.autoscaling.target_per_pod or self.concurrency

    @property
    def drain_grace_seconds(self) -> int:
        return max(0, self.termination_grace_period_seconds - 5)


class TaskQueueStatus(CrdModel):
    """What the operator last observed (written by the operator only)."""

    backlog: int = Field(default=0, description="Ready + running + due delayed tasks")
    ready: int = Field(default=0, description="Tasks waiting for a worker")
    running: int = Field(default=0, description="Tasks being run")
    replicas: int = Field(default=0, description="Pods of the worker Deployment")
    desired: int = Field(default=0, description="Replicas the autoscaler wants")
    last_scale_time: str | None = Field(default=None, description="Last change of replicas")
    observed_generation: int | None = Field(
        default=None, description="The spec generation this status describes"
    )
    schedules: list[QueueScheduleStatus] = SCHEDULES_STATUS_FIELD
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Ready (workers available or scaled to zero), Scaling (a change in "
        "progress or stabilizing) and Degraded (the Deployment or the engine refuses; the "
        "message says why)",
        json_schema_extra=CONDITIONS_SCHEMA_EXTRA,
    )


TASKQUEUE = Kind(
    kind="TaskQueue",
    plural="taskqueues",
    spec=TaskQueueSpec,
    status=TaskQueueStatus,
    description="A TaskFlow queue: its worker Deployment and how it scales with the backlog",
    short_names=("tq",),
    rules=(
        (
            f"self.metadata.name.size() <= {MAX_NAME_LENGTH}",
            f"a TaskQueue's name has at most {MAX_NAME_LENGTH} characters "
            "(its worker Deployment is <name>-workers)",
        ),
    ),
    columns=(
        PrinterColumn("Backlog", ".status.backlog"),
        PrinterColumn("Running", ".status.running"),
        PrinterColumn("Replicas", ".status.replicas"),
        PrinterColumn("Desired", ".status.desired", priority=1),
        PrinterColumn("Ready", '.status.conditions[?(@.type=="Ready")].status', "string"),
        AGE,
    ),
)
