"""Conversions between the client's dataclasses and the protobuf messages of the API."""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from ._errors import InvalidArgumentError, TaskFlowError
from ._models import (
    Attempt,
    QueueStats,
    RetryPolicy,
    Task,
    TaskRequest,
    TaskState,
)
from ._names import check_task_fields
from .v1 import tasks_pb2 as pb

__all__ = [
    "decode_json",
    "encode_json",
    "queue_stats_from_proto",
    "request_from_item",
    "spec_from_request",
    "task_from_proto",
    "with_idempotency_key",
]

_REQUEST_FIELDS = frozenset(f.name for f in dataclasses.fields(TaskRequest))


def encode_json(value: Any, field: str) -> str:
    """JSON text of ``value``; ``None`` is sent as empty text (which the API reads as null)."""
    if value is None:
        return ""
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(f"{field}: not JSON-serializable ({exc})") from exc


def decode_json(text: str) -> Any:
    """The value of JSON text from the server; empty text is ``None``.

    Text that is not valid JSON is returned unchanged rather than making the task unreadable.
    """
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def _seconds(value: float | timedelta, field: str) -> float:
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidArgumentError(f"{field}: must be a number of seconds or a timedelta")
    return float(value)


def _timestamp(value: datetime, field: str) -> Timestamp:
    if not isinstance(value, datetime):
        raise InvalidArgumentError(f"{field}: must be a datetime")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidArgumentError(f"{field}: must be timezone-aware")
    ts = Timestamp()
    ts.FromDatetime(value.astimezone(UTC))
    return ts


def timestamp_of(msg: Any, name: str) -> datetime | None:
    if not msg.HasField(name):
        return None
    ts: Timestamp = getattr(msg, name)
    return ts.ToDatetime(tzinfo=UTC)


def _optional(text: str) -> str | None:
    return text or None


def request_from_item(item: TaskRequest | Mapping[str, Any], index: int) -> TaskRequest:
    """A ``TaskRequest`` from one element given to ``submit_many``."""
    if isinstance(item, TaskRequest):
        return item
    if not isinstance(item, Mapping):
        raise InvalidArgumentError(f"tasks[{index}]: must be a dict or a TaskRequest")
    unknown = sorted(set(item) - _REQUEST_FIELDS)
    if unknown:
        raise InvalidArgumentError(f"tasks[{index}].{unknown[0]}: unknown key")
    for required in ("queue", "handler"):
        if required not in item:
            raise InvalidArgumentError(f"tasks[{index}].{required}: required")
    return TaskRequest(**item)


def with_idempotency_key(request: TaskRequest) -> TaskRequest:
    """``request`` with a fresh random idempotency key unless it has one."""
    if request.idempotency_key:
        return request
    return dataclasses.replace(request, idempotency_key=uuid.uuid4().hex)


def spec_from_request(request: TaskRequest, namespace: str, prefix: str = "") -> pb.TaskSpec:
    """The ``TaskSpec`` of ``request``; ``namespace`` applies when the request names none.

    Raises ``InvalidArgumentError`` (field names start with ``prefix``) for values that cannot
    be sent, or that the server's rules for names, keys, labels and ranges refuse.
    """
    check_task_fields(request, namespace, prefix)
    spec = pb.TaskSpec(
        namespace=request.namespace or namespace,
        queue=request.queue,
        handler=request.handler,
        payload_json=encode_json(request.payload, f"{prefix}payload"),
        priority=request.priority,
        idempotency_key=request.idempotency_key or "",
        concurrency_key=request.concurrency_key or "",
        concurrency_limit=request.concurrency_limit or 0,
    )
    if request.delay is not None and request.run_at is not None:
        raise InvalidArgumentError(f"{prefix}run_at: give either delay or run_at, not both")
    if request.delay is not None:
        spec.delay_seconds = _seconds(request.delay, f"{prefix}delay")
    if request.run_at is not None:
        spec.run_at.CopyFrom(_timestamp(request.run_at, f"{prefix}run_at"))
    if request.max_retries is not None:
        spec.max_retries = request.max_retries
    if request.timeout is not None:
        spec.timeout_seconds = _seconds(request.timeout, f"{prefix}timeout")
    if request.retry is not None:
        spec.retry.CopyFrom(_retry_policy(request.retry))
    if request.labels:
        for key, value in request.labels.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise InvalidArgumentError(f"{prefix}labels: keys and values must be strings")
            spec.labels[key] = value
    return spec


def _retry_policy(policy: RetryPolicy) -> pb.RetryPolicy:
    return pb.RetryPolicy(
        initial_seconds=policy.initial_seconds,
        multiplier=policy.multiplier,
        max_seconds=policy.max_seconds,
    )


def _state(value: str) -> TaskState:
    try:
        return TaskState(value)
    except ValueError:
        raise TaskFlowError(
            f"the server reported the unknown task state {value!r}; upgrade taskflow-client"
        ) from None


def attempt_from_proto(msg: pb.Attempt) -> Attempt:
    return Attempt(
        number=msg.number,
        worker=msg.worker,
        started_at=timestamp_of(msg, "started_at"),
        finished_at=timestamp_of(msg, "finished_at"),
        outcome=msg.outcome,
        error=_optional(msg.error),
    )


def task_from_proto(msg: pb.Task) -> Task:
    """The ``Task`` of a ``taskflow.v1.Task`` message."""
    return Task(
        id=msg.id,
        namespace=msg.namespace,
        queue=msg.queue,
        handler=msg.handler,
        state=_state(msg.state),
        payload=decode_json(msg.payload_json),
        result=decode_json(msg.result_json),
        error=_optional(msg.error),
        traceback=_optional(msg.traceback),
        priority=msg.priority,
        attempts=msg.attempts,
        max_retries=msg.max_retries,
        timeout=msg.timeout_seconds or None,
        idempotency_key=_optional(msg.idempotency_key),
        concurrency_key=_optional(msg.concurrency_key),
        created_at=timestamp_of(msg, "created_at"),
        run_at=timestamp_of(msg, "run_at"),
        started_at=timestamp_of(msg, "started_at"),
        finished_at=timestamp_of(msg, "finished_at"),
        updated_at=timestamp_of(msg, "updated_at"),
        progress=msg.progress,
        progress_message=_optional(msg.progress_message),
        attempt_history=tuple(attempt_from_proto(a) for a in msg.attempt_history),
        labels=dict(msg.labels),
    )


def queue_stats_from_proto(msg: pb.QueueStats) -> QueueStats:
    """The ``QueueStats`` of a ``taskflow.v1.QueueStats`` message."""
    return QueueStats(
        namespace=msg.namespace,
        queue=msg.queue,
        ready=msg.ready,
        scheduled=msg.scheduled,
        running=msg.running,
        succeeded=msg.succeeded,
        failed=msg.failed,
        cancelled=msg.cancelled,
        dead_letters=msg.dead_letters,
    )
