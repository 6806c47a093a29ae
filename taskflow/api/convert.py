"""Protocol buffers <-> engine objects. Every request field is checked here or by the model."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from taskflow.errors import InvalidArgument
from taskflow.models import (
    Attempt,
    QueueStats,
    TaskRecord,
    TaskSubmission,
    validate_submission,
)
from taskflow.telemetry import tracing
from taskflow.values import text_problem
from taskflow_client.v1 import tasks_pb2 as pb


def to_datetime(ts: Timestamp) -> datetime:
    return ts.ToDatetime(tzinfo=UTC)


def to_timestamp(dt: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(dt.astimezone(UTC))
    return ts


def _check_text(value: str, field: str) -> str:
    problem = text_problem(value)
    if problem:
        raise InvalidArgument(field, f"must not contain {problem}")
    return value


def spec_to_dict(spec: pb.TaskSpec, path: str) -> dict[str, Any]:
    """The fields a client set, as the submission model expects them.

    Proto3 zero values mean "not given": an empty ``queue`` is reported as missing, a zero
    ``concurrency_limit`` as absent, and so on.
    """
    raw: dict[str, Any] = {
        "priority": spec.priority,
        "delay_seconds": spec.delay_seconds,
        "timeout_seconds": spec.timeout_seconds,
        "payload_json": spec.payload_json,  # checked once, by the submission model
    }
    for name in ("namespace", "queue", "handler", "idempotency_key", "concurrency_key"):
        value: str = getattr(spec, name)
        if value:
            raw[name] = _check_text(value, f"{path}.{name}")
    if spec.concurrency_limit:
        raw["concurrency_limit"] = spec.concurrency_limit
    if spec.HasField("run_at"):
        try:
            raw["run_at"] = to_datetime(spec.run_at)
        except (ValueError, OverflowError) as exc:
            raise InvalidArgument(f"{path}.run_at", f"is not a valid instant: {exc}") from None
    if spec.HasField("max_retries"):
        raw["max_retries"] = spec.max_retries
    if spec.HasField("retry"):
        raw["retry"] = {
            "initial_seconds": spec.retry.initial_seconds,
            "multiplier": spec.retry.multiplier,
            "max_seconds": spec.retry.max_seconds,
        }
    if spec.labels:
        raw["labels"] = {
            _check_text(k, f"{path}.labels"): _check_text(v, f"{path}.labels[{k}]")
            for k, v in spec.labels.items()
        }
    tracing.stamp(raw)
    return raw


def submission_from_spec(spec: pb.TaskSpec, path: str = "task") -> TaskSubmission:
    """Validate a ``TaskSpec``; errors name the field, e.g. ``tasks[1].handler``."""
    return validate_submission(spec_to_dict(spec, path), path=path)


def _json_text(text: str | None) -> str:
    """Stored JSON text as the API sends it: JSON ``null`` (or nothing) is empty."""
    return "" if text is None or text == "null" else text


def attempt_to_proto(attempt: Attempt) -> pb.Attempt:
    msg = pb.Attempt(
        number=attempt.number,
        worker=attempt.worker or "",
        outcome=attempt.outcome,
        error=attempt.error or "",
    )
    if attempt.started_at is not None:
        msg.started_at.CopyFrom(to_timestamp(attempt.started_at))
    if attempt.finished_at is not None:
        msg.finished_at.CopyFrom(to_timestamp(attempt.finished_at))
    return msg


def task_to_proto(task: TaskRecord, now: datetime) -> pb.Task:
    msg = pb.Task(
        id=task.id,
        namespace=task.namespace,
        queue=task.queue,
        handler=task.handler,
        state=task.visible_state(now).value,
        payload_json=_json_text(task.payload_json),
        result_json=_json_text(task.result_json),
        error=task.error or "",
        traceback=task.traceback or "",
        priority=task.priority,
        attempts=task.attempts,
        max_retries=task.max_retries,
        timeout_seconds=task.timeout_seconds,
        idempotency_key=task.idempotency_key or "",
        concurrency_key=task.concurrency_key or "",
        progress=task.progress or 0.0,
        progress_message=task.progress_message or "",
        labels=task.labels,
    )
    for name in ("created_at", "run_at", "started_at", "finished_at", "updated_at"):
        value: datetime | None = getattr(task, name)
        if value is not None:
            getattr(msg, name).CopyFrom(to_timestamp(value))
    if task.attempt_history:
        msg.attempt_history.extend(attempt_to_proto(a) for a in task.attempt_history)
    return msg


def stats_to_proto(stats: QueueStats) -> pb.QueueStats:
    return pb.QueueStats(
        namespace=stats.namespace,
        queue=stats.queue,
        ready=stats.ready,
        scheduled=stats.scheduled,
        running=stats.running,
        succeeded=stats.succeeded,
        failed=stats.failed,
        cancelled=stats.cancelled,
        dead_letters=stats.dead_letters,
    )


def task_spec(task: TaskSubmission) -> pb.TaskSpec:
    """The ``TaskSpec`` of a validated submission (the inverse of ``submission_from_spec``)."""
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
