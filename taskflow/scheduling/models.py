"""What a schedule is: its timing, its concurrency policy and what each tick fires.

The target is stored polymorphically, as a ``kind`` and a JSON spec of that kind: ``task`` (a
task submission, validated with ``TaskSubmission``) or ``dag`` (a whole DAG run, validated
with ``validate_dag``), checked when the schedule is created or updated, so that a tick never
fails on its spec.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from taskflow.errors import InvalidArgument
from taskflow.models import _NAME_PATTERN, _NAMESPACE_PATTERN, TaskSubmission, validate_submission
from taskflow.scheduling.cron import CronError, CronSchedule
from taskflow.values import json_problem
from taskflow.workflows.models import DagSubmission, validate_dag

#: What a tick can fire: a task, or a DAG run.
TARGET_KINDS = ("task", "dag")
#: Labels every fired task carries: which schedule fired it, and for which tick.
SCHEDULE_LABEL = "taskflow.dev/schedule"
TICK_LABEL = "taskflow.dev/tick"
MAX_STARTING_DEADLINE = 366 * 86400
MAX_OWNER_LENGTH = 512
#: Fields of a task submission a schedule sets itself, per tick.
_PER_TICK_FIELDS = {
    "idempotency_key": "is set by the schedule: each tick is its own key",
    "run_at": "is not allowed: a scheduled task runs at its tick",
    "delay_seconds": "is not allowed: a scheduled task runs at its tick",
}


class ConcurrencyPolicy(StrEnum):
    """What a tick does while the task of the previous fire has not finished (as a
    Kubernetes CronJob): ``Allow`` fires anyway, ``Forbid`` skips the tick, ``Replace``
    cancels the previous task, then fires."""

    ALLOW = "Allow"
    FORBID = "Forbid"
    REPLACE = "Replace"


@functools.lru_cache(maxsize=1024)
def cron_schedule(expression: str, timezone: str) -> CronSchedule:
    """The (cached) ticks of ``expression`` in ``timezone``; ``CronError`` when invalid."""
    return CronSchedule(expression, timezone)


def tick_key(schedule_id: str, tick: datetime) -> str:
    """The idempotency key of the task a tick fires: the same tick never fires twice."""
    return f"schedule:{schedule_id}:{tick_text(tick)}"


def tick_text(tick: datetime) -> str:
    return tick.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class ScheduleSpec:
    """A validated schedule as a client declares it."""

    namespace: str
    name: str
    cron: str
    timezone: str = "UTC"
    concurrency_policy: ConcurrencyPolicy = ConcurrencyPolicy.ALLOW
    suspend: bool = False
    starting_deadline_seconds: int | None = None
    kind: str = "task"
    #: The spec of ``kind`` as JSON: for a task, the submission without its namespace.
    target: Any = None
    #: Who manages the schedule: "" through the API; ``file:PATH`` for ``taskflow dev
    #: --schedules PATH``. A schedule is only replaced or pruned by its owner.
    owner: str = ""

    @property
    def timing(self) -> CronSchedule:
        return cron_schedule(self.cron, self.timezone)

    def same_timing(self, other: ScheduleSpec) -> bool:
        return (self.cron, self.timezone) == (other.cron, other.timezone)

    def task(self) -> TaskSubmission:
        """The submission template of a ``task`` schedule."""
        if self.kind != "task":
            raise InvalidArgument("kind", f"{self.kind!r} schedules do not fire a task")
        return validate_submission({**self.target, "namespace": self.namespace})

    def submission(self, schedule_id: str, tick: datetime) -> TaskSubmission:
        """The task that ``tick`` fires: the template with the tick's key and labels."""
        template = self.task()
        labels = {**template.labels, SCHEDULE_LABEL: self.name, TICK_LABEL: tick_text(tick)}
        return template.model_copy(
            update={"idempotency_key": tick_key(schedule_id, tick), "labels": labels}
        )

    def dag(self, schedule_id: str | None = None, tick: datetime | None = None) -> DagSubmission:
        """The run a ``dag`` schedule fires; with a tick, keyed and labelled by it."""
        if self.kind != "dag":
            raise InvalidArgument("kind", f"{self.kind!r} schedules do not fire a DAG run")
        raw = {**self.target, "namespace": self.namespace}
        if schedule_id is not None and tick is not None:
            raw["idempotency_key"] = tick_key(schedule_id, tick)
            raw["labels"] = {
                **raw.get("labels", {}),
                SCHEDULE_LABEL: self.name,
                TICK_LABEL: tick_text(tick),
            }
        return validate_dag(raw)


@dataclass(frozen=True)
class ScheduleRecord:
    """A schedule as PostgreSQL keeps it: the spec and what the scheduler did with it."""

    id: str
    spec: ScheduleSpec
    revision: int
    created_at: datetime
    updated_at: datetime
    #: The earliest tick not yet handled (it may be past while no scheduler runs).
    next_fire_at: datetime | None = None
    #: The latest tick handled, fired or skipped.
    last_tick: datetime | None = None
    #: A tick whose task is being submitted (written before the submission).
    pending_tick: datetime | None = None
    last_fire_tick: datetime | None = None
    last_fired_at: datetime | None = None
    last_task_id: str | None = None
    fire_count: int = 0
    skip_count: int = 0
    last_skip_tick: datetime | None = None
    last_skip_reason: str | None = None

    @property
    def namespace(self) -> str:
        return self.spec.namespace

    @property
    def name(self) -> str:
        return self.spec.name

    def upcoming(self, now: datetime) -> datetime | None:
        """When the schedule fires next: ``None`` while suspended; a past time while it is
        overdue (the latest tick so far, which is the one a scheduler fires)."""
        if self.spec.suspend or self.next_fire_at is None:
            return None
        if self.next_fire_at > now or self.spec.kind not in TARGET_KINDS:
            return self.next_fire_at
        return max(self.next_fire_at, self.spec.timing.latest_at_or_before(now))


def validate_schedule(
    *,
    namespace: str,
    name: str,
    cron: str,
    timezone: str = "",
    concurrency_policy: str = "",
    suspend: bool = False,
    starting_deadline_seconds: int | None = None,
    kind: str = "task",
    target: Any = None,
    owner: str = "",
    path: str = "schedule",
) -> ScheduleSpec:
    """A ``ScheduleSpec`` from raw values, or ``InvalidArgument`` naming the first bad field
    (``schedule.cron``, ``schedule.task.handler``, ...)."""
    namespace = namespace or "default"
    if not re.fullmatch(_NAMESPACE_PATTERN, namespace):
        raise InvalidArgument(
            f"{path}.namespace",
            f"{namespace!r} is not a namespace (lower-case letters, digits and '-', "
            "at most 63 characters)",
        )
    if not name:
        raise InvalidArgument(f"{path}.name", "is required")
    if not re.fullmatch(_NAME_PATTERN, name):
        raise InvalidArgument(
            f"{path}.name",
            f"{name!r} is not a valid name (letters, digits, '.', '_' and '-', at most 128 "
            "characters, starting and ending with a letter or digit)",
        )
    if not cron:
        raise InvalidArgument(f"{path}.cron", "is required (for example '0 3 * * *')")
    timezone = timezone or "UTC"
    try:
        timing = CronSchedule(cron, "UTC")
    except CronError as exc:
        raise InvalidArgument(
            f"{path}.cron", f"{cron!r} is not a valid cron expression: {exc}"
        ) from None
    try:
        cron_schedule(timing.expression, timezone)
    except CronError as exc:
        raise InvalidArgument(f"{path}.timezone", str(exc)) from None
    policy = _policy(concurrency_policy, f"{path}.concurrency_policy")
    if starting_deadline_seconds is not None and not (
        0 < starting_deadline_seconds <= MAX_STARTING_DEADLINE
    ):
        raise InvalidArgument(
            f"{path}.starting_deadline_seconds",
            f"must be between 1 and {MAX_STARTING_DEADLINE} seconds, "
            f"got {starting_deadline_seconds}",
        )
    if len(owner) > MAX_OWNER_LENGTH or "\x00" in owner:
        raise InvalidArgument(
            f"{path}.owner", f"must be at most {MAX_OWNER_LENGTH} characters, without NUL"
        )
    if kind not in TARGET_KINDS:
        raise InvalidArgument(
            f"{path}.kind",
            f"{kind!r} is not something a schedule can fire; one of: {', '.join(TARGET_KINDS)}",
        )
    if kind == "dag":
        stored = _dag_template(target, namespace, f"{path}.dag")
    else:
        stored = _stored_target(_task_template(target, namespace, f"{path}.task"))
    problem = json_problem(stored)
    if problem:
        raise InvalidArgument(f"{path}.{kind}", problem)
    return ScheduleSpec(
        namespace=namespace,
        name=name,
        cron=timing.expression,
        timezone=timezone,
        concurrency_policy=policy,
        suspend=bool(suspend),
        starting_deadline_seconds=starting_deadline_seconds,
        kind=kind,
        target=stored,
        owner=owner,
    )


def _stored_target(task: TaskSubmission) -> dict[str, Any]:
    """The JSON spec a ``task`` schedule keeps: the submission without its namespace, and with
    its payload as a JSON value rather than text."""
    stored: dict[str, Any] = task.model_dump(
        mode="json", exclude={"namespace", "payload_json"}, exclude_defaults=True
    )
    if task.payload_json != "null":
        stored["payload"] = task.payload
    return stored


def _dag_template(raw: Any, namespace: str, path: str) -> dict[str, Any]:
    """The JSON spec a ``dag`` schedule keeps (its run's fields and steps, without namespace
    and idempotency key), checked as a whole run now."""
    if not isinstance(raw, dict):
        raise InvalidArgument(path, "must be a mapping with queue and steps")
    if raw.get("idempotency_key"):
        raise InvalidArgument(f"{path}.idempotency_key", _PER_TICK_FIELDS["idempotency_key"])
    given = raw.get("namespace")
    if given and given != namespace:
        raise InvalidArgument(
            f"{path}.namespace",
            f"{given!r} differs from the schedule's namespace {namespace!r}; a schedule fires "
            "runs of its own namespace",
        )
    stored = {k: v for k, v in raw.items() if k not in ("namespace", "idempotency_key")}
    validate_dag({**stored, "namespace": namespace}, path=path)
    return stored


def _policy(raw: str, field: str) -> ConcurrencyPolicy:
    if not raw:
        return ConcurrencyPolicy.ALLOW
    for policy in ConcurrencyPolicy:
        if raw.lower() == policy.value.lower():
            return policy
    raise InvalidArgument(
        field, f"{raw!r} is not one of {', '.join(p.value for p in ConcurrencyPolicy)}"
    )


def _task_template(raw: Any, namespace: str, path: str) -> TaskSubmission:
    if raw is None:
        raise InvalidArgument(path, "is required: the task each tick submits (queue, handler...)")
    if not isinstance(raw, dict):
        raise InvalidArgument(path, "must be a mapping of task fields (queue, handler, ...)")
    for field, problem in _PER_TICK_FIELDS.items():
        if raw.get(field):
            raise InvalidArgument(f"{path}.{field}", problem)
    given = raw.get("namespace")
    if given and given != namespace:
        raise InvalidArgument(
            f"{path}.namespace",
            f"{given!r} differs from the schedule's namespace {namespace!r}; a schedule fires "
            "tasks of its own namespace",
        )
    return validate_submission({**raw, "namespace": namespace}, path=path)
