"""Protocol buffers <-> schedules."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from taskflow.api.convert import spec_to_dict, task_spec, to_timestamp
from taskflow.api.dags import dag_fields, dag_to_proto
from taskflow.scheduling.models import ScheduleRecord, ScheduleSpec, validate_schedule
from taskflow_client.v1 import tasks_pb2 as pb


def schedule_from_proto(msg: pb.ScheduleSpec, path: str = "schedule") -> ScheduleSpec:
    """Validate a ``ScheduleSpec`` message; errors name the field (``schedule.cron``)."""
    kind = msg.WhichOneof("target")
    target: Any = None
    if kind == "task":
        target = spec_to_dict(msg.task, f"{path}.task")
    elif kind == "dag":
        target = dag_fields(msg.dag, f"{path}.dag")
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
        msg.task.CopyFrom(task_spec(spec.task()))
    elif spec.kind == "dag":
        msg.dag.CopyFrom(dag_to_proto(spec.dag()))
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
