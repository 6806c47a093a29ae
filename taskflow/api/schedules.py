"""Protocol buffers <-> schedules."""

from __future__ import annotations

from datetime import datetime

from taskflow.api.convert import spec_to_dict, to_timestamp
from taskflow.models import TaskSubmission
from taskflow.scheduling.models import ScheduleRecord, ScheduleSpec, validate_schedule
from taskflow_client.v1 import tasks_pb2 as pb


def schedule_from_proto(msg: pb.ScheduleSpec, path: str = "schedule") -> ScheduleSpec:
    """Validate a ``ScheduleSpec`` message; errors name the field (``schedule.cron``)."""
    kind = msg.WhichOneof("target")
    target = spec_to_dict(msg.task, f"{path}.task") if kind == "task" else None
    return validate_schedule(
        namespace=msg.namespace,
        name=msg.name,
        cron=msg.cron,
        timezone=msg.timezone,
        concurrency_policy=msg.concurrency_policy,
        suspend=msg.suspend,
        starting_deadline_seconds=(
            msg.starting_deadline_seconds if msg.HasField("starting_deadline_seconds") else None
        ),
        kind=kind or "task",
        target=target,
        owner=msg.owner,
        path=path,
    )


def _task_spec(task: TaskSubmission) -> pb.TaskSpec:
    spec = pb.TaskSpec(
        namespace=task.namespace,
        queue=task.queue,
        handler=task.handler,
        payload_json="" if task.payload_json == "null" else task.payload_json,
        priority=task.priority,
        timeout_seconds=task.timeout_seconds,
        concurrency_key=task.concurrency_key or "",
        concurrency_limit=task.concurrency_limit or 0,
        labels=task.labels,
    )
    if task.max_retries is not None:
        spec.max_retries = task.max_retries
    if task.retry is not None:
        spec.retry.CopyFrom(
            pb.RetryPolicy(
                initial_seconds=task.retry.initial_seconds,
                multiplier=task.retry.multiplier,
                max_seconds=task.retry.max_seconds,
            )
        )
    return spec


def spec_to_proto(spec: ScheduleSpec) -> pb.ScheduleSpec:
    msg = pb.ScheduleSpec(
        namespace=spec.namespace,
        name=spec.name,
        cron=spec.cron,
        timezone=spec.timezone,
        concurrency_policy=spec.concurrency_policy.value,
        suspend=spec.suspend,
        owner=spec.owner,
    )
    if spec.starting_deadline_seconds is not None:
        msg.starting_deadline_seconds = spec.starting_deadline_seconds
    if spec.kind == "task":
        msg.task.CopyFrom(_task_spec(spec.task()))
    return msg


def schedule_to_proto(record: ScheduleRecord, now: datetime) -> pb.Schedule:
    msg = pb.Schedule(
        spec=spec_to_proto(record.spec),
        id=record.id,
        last_task_id=record.last_task_id or "",
        fire_count=record.fire_count,
        skip_count=record.skip_count,
        last_skip_reason=record.last_skip_reason or "",
    )
    times = {
        "next_fire_time": record.upcoming(now),
        "last_fire_time": record.last_fire_tick,
        "last_skip_time": record.last_skip_tick,
        "last_fired_at": record.last_fired_at,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
    }
    for name, value in times.items():
        if value is not None:
            getattr(msg, name).CopyFrom(to_timestamp(value))
    return msg
