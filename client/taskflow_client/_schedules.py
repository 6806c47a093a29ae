"""Schedules between the client's values and messages (shared by both clients)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._convert import (
    _optional,
    decode_json,
    request_from_item,
    spec_from_request,
    timestamp_of,
)
from ._errors import InvalidArgumentError, TaskFlowError
from ._models import ConcurrencyPolicy, RetryPolicy, Schedule, TaskRequest
from ._workflows import Step, dag_spec
from .v1 import tasks_pb2 as pb

__all__ = ["schedule_from_proto", "schedule_spec"]

DagTarget = Mapping[str, Any]
"""A DAG a schedule fires: ``{"queue": ..., "steps": Flow | [Step | dict, ...],
"failure_policy": ..., "name": ..., "labels": {...}}``."""


def _task_target(task: Any) -> TaskRequest:
    if isinstance(task, Mapping):
        try:
            return request_from_item(task, 0)
        except InvalidArgumentError as exc:
            raise InvalidArgumentError("task" + exc.details.removeprefix("tasks[0]")) from None
    if isinstance(task, TaskRequest):
        return task
    raise InvalidArgumentError("task: must be a TaskRequest or a dict of its fields")


def _dag_target(dag: Any, namespace: str) -> pb.DagSpec:
    if not isinstance(dag, Mapping):
        raise InvalidArgumentError("dag: must be a dict with queue and steps")
    unknown = sorted(set(dag) - {"queue", "steps", "failure_policy", "name", "labels"})
    if unknown:
        raise InvalidArgumentError(f"dag.{unknown[0]}: unknown key")
    if "steps" not in dag or not dag.get("queue"):
        raise InvalidArgumentError("dag: queue and steps are required")
    return dag_spec(
        dag["steps"],
        queue=dag["queue"],
        namespace=namespace,
        name=dag.get("name"),
        failure_policy=dag.get("failure_policy") or "fail_fast",
        labels=dag.get("labels"),
    )


def schedule_spec(
    namespace: str,
    name: str,
    cron: str,
    task: TaskRequest | Mapping[str, Any] | None,
    *,
    dag: DagTarget | None = None,
    timezone: str,
    concurrency_policy: ConcurrencyPolicy | str,
    suspend: bool,
    starting_deadline_seconds: int | None,
) -> pb.ScheduleSpec:
    """The ``ScheduleSpec`` of ``put_schedule``'s arguments; ``namespace`` is the schedule's
    and its task's (or run's). Values the server checks (cron, zone, policy...) are sent as
    given."""
    if (task is None) == (dag is None):
        raise InvalidArgumentError("task: give what each tick fires: a task or a dag (one)")
    if not isinstance(cron, str):
        raise InvalidArgumentError("cron: must be a string such as '0 3 * * *'")
    if not isinstance(timezone, str):
        raise InvalidArgumentError("timezone: must be the name of a time zone")
    if starting_deadline_seconds is not None and (
        isinstance(starting_deadline_seconds, bool)
        or not isinstance(starting_deadline_seconds, int)
    ):
        raise InvalidArgumentError("starting_deadline_seconds: must be an integer or None")
    spec = pb.ScheduleSpec(
        namespace=namespace,
        name=name,
        cron=cron,
        timezone=timezone,
        concurrency_policy=str(concurrency_policy),
        suspend=bool(suspend),
    )
    if task is not None:
        spec.task.CopyFrom(spec_from_request(_task_target(task), namespace, prefix="task."))
    else:
        spec.dag.CopyFrom(_dag_target(dag, namespace))
    if starting_deadline_seconds is not None:
        spec.starting_deadline_seconds = starting_deadline_seconds
    return spec


def _task_request_from_proto(msg: pb.TaskSpec) -> TaskRequest:
    retry = None
    if msg.HasField("retry"):
        retry = RetryPolicy(
            initial_seconds=msg.retry.initial_seconds,
            multiplier=msg.retry.multiplier,
            max_seconds=msg.retry.max_seconds,
        )
    return TaskRequest(
        queue=msg.queue,
        handler=msg.handler,
        payload=decode_json(msg.payload_json),
        priority=msg.priority,
        max_retries=msg.max_retries if msg.HasField("max_retries") else None,
        timeout=msg.timeout_seconds or None,
        concurrency_key=_optional(msg.concurrency_key),
        concurrency_limit=msg.concurrency_limit or None,
        retry=retry,
        labels=dict(msg.labels) or None,
        namespace=_optional(msg.namespace),
    )


def _dag_from_proto(msg: pb.DagSpec) -> dict[str, Any]:
    steps = []
    for step in msg.steps:
        task = _task_request_from_proto(step.task)
        steps.append(
            Step(
                name=step.name,
                handler=task.handler,
                payload=task.payload,
                depends_on=tuple(step.depends_on),
                queue=task.queue or None,
                priority=task.priority,
                max_retries=task.max_retries,
                timeout=task.timeout,
                retry=task.retry,
                labels=task.labels,
                concurrency_key=task.concurrency_key,
                concurrency_limit=task.concurrency_limit,
            )
        )
    dag: dict[str, Any] = {
        "queue": msg.queue,
        "steps": steps,
        "failure_policy": msg.failure_policy or "fail_fast",
    }
    if msg.name:
        dag["name"] = msg.name
    if msg.labels:
        dag["labels"] = dict(msg.labels)
    return dag


def _policy(value: str) -> ConcurrencyPolicy:
    try:
        return ConcurrencyPolicy(value)
    except ValueError:
        raise TaskFlowError(
            f"the server reported the unknown concurrency policy {value!r}; upgrade taskflow-client"
        ) from None


def schedule_from_proto(msg: pb.Schedule) -> Schedule:
    """The ``Schedule`` of a ``taskflow.v1.Schedule`` message."""
    spec = msg.spec
    return Schedule(
        namespace=spec.namespace,
        name=spec.name,
        cron=spec.cron,
        timezone=spec.timezone or "UTC",
        task=_task_request_from_proto(spec.task) if spec.HasField("task") else None,
        dag=_dag_from_proto(spec.dag) if spec.HasField("dag") else None,
        concurrency_policy=_policy(spec.concurrency_policy or "Allow"),
        suspend=spec.suspend,
        starting_deadline_seconds=(
            spec.starting_deadline_seconds if spec.HasField("starting_deadline_seconds") else None
        ),
        owner=_optional(spec.owner),
        id=msg.id,
        next_fire_time=timestamp_of(msg, "next_fire_time"),
        last_fire_time=timestamp_of(msg, "last_fire_time"),
        last_task_id=_optional(msg.last_task_id),
        fire_count=msg.fire_count,
        skip_count=msg.skip_count,
        last_skip_time=timestamp_of(msg, "last_skip_time"),
        last_skip_reason=_optional(msg.last_skip_reason),
        last_fired_at=timestamp_of(msg, "last_fired_at"),
        created_at=timestamp_of(msg, "created_at"),
        updated_at=timestamp_of(msg, "updated_at"),
    )
