"""Protocol buffers <-> schedules."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from taskflow.api.convert import spec_to_dict, to_timestamp
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


def _task_spec(target: dict[str, Any]) -> pb.TaskSpec:
    spec = pb.TaskSpec(
        queue=target.get("queue", ""),
        handler=target.get("handler", ""),
        payload_json=json.dumps(target["payload"]) if target.get("payload") is not None else "",
        priority=target.get("priority", 0),
        timeout_seconds=target.get("timeout_seconds", 0.0),
        concurrency_key=target.get("concurrency_key") or "",
        concurrency_limit=target.get("concurrency_limit") or 0,
        labels=target.get("labels") or {},
    )
    if target.get("max_retries") is not None:
        spec.max_retries = target["max_retries"]
    retry = target.get("retry")
    if retry:
        spec.retry.CopyFrom(pb.RetryPolicy(**retry))
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
    if spec.kind == "task" and isinstance(spec.target, dict):
        msg.task.CopyFrom(_task_spec(spec.target))
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
