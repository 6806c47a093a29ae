"""``Task`` resources: submitted once (idempotent on the object's UID), mirrored, cancelled."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import kopf
from pydantic import ValidationError

from taskflow.errors import InvalidArgument, NotFound, PayloadTooLarge, Unavailable
from taskflow.models import TaskRecord, validate_submission
from taskflow_operator.context import OperatorContext
from taskflow_operator.crd.task import TaskSpec
from taskflow_operator.crd.taskqueue import TaskQueueSpec
from taskflow_operator.taskstatus import (
    is_finished,
    mirrored_status,
    rejected_status,
    status_changed,
)

log = logging.getLogger("taskflow.operator.tasks")
PLURAL = "tasks"
QUEUE_NOT_FOUND = "QueueNotFound"
INVALID = "InvalidSpec"


def idempotency_key(uid: str) -> str:
    return f"k8s-task-{uid}"


def submission(
    namespace: str, uid: str, name: str, spec: TaskSpec, queue: TaskQueueSpec
) -> dict[str, Any]:
    """The engine submission: the Task's own fields, the TaskQueue's defaults for the rest."""
    raw: dict[str, Any] = {
        "namespace": namespace,
        "queue": spec.queue,
        "handler": spec.handler,
        "payload": spec.payload,
        "priority": spec.priority,
        "max_retries": queue.retry.max_retries if spec.max_retries is None else spec.max_retries,
        "timeout_seconds": (
            queue.task_timeout_seconds if spec.timeout_seconds is None else spec.timeout_seconds
        ),
        "retry": {
            "initial_seconds": queue.retry.initial_seconds,
            "multiplier": queue.retry.multiplier,
            "max_seconds": queue.retry.max_seconds,
        },
        "idempotency_key": idempotency_key(uid),
        "labels": {"k8s.task": name},
    }
    if spec.delay_seconds is not None:
        raw["delay_seconds"] = spec.delay_seconds
    if spec.run_at is not None:
        raw["run_at"] = spec.run_at
    return raw


async def submit_task(ctx: OperatorContext, body: Any) -> dict[str, Any] | None:
    """Submit when not yet submitted; return the status to write (None: nothing to do)."""
    status = dict(body.get("status") or {})
    if status.get("taskId") or is_finished(status):
        return None
    meta = body["metadata"]
    ns, uid, name = meta["namespace"], meta["uid"], meta["name"]
    try:
        spec = TaskSpec.model_validate(dict(body["spec"]))
    except ValidationError as exc:
        return _reject(ctx, body, INVALID, f"spec: {exc.errors()[0]['msg']}")
    queue_body = await ctx.kube.get_object("taskqueues", ns, spec.queue)
    if queue_body is None:
        message = f"no TaskQueue {spec.queue!r} in namespace {ns}"
        return _reject(ctx, body, QUEUE_NOT_FOUND, message)
    queue = TaskQueueSpec.model_validate(dict(queue_body.get("spec") or {}))
    try:
        sub = validate_submission(submission(ns, uid, name, spec, queue), "spec")
        (result,) = await ctx.engine.submit([sub])
        task = await ctx.engine.get(result.task_id)
    except (InvalidArgument, PayloadTooLarge) as exc:
        return _reject(ctx, body, INVALID, str(exc))
    except (Unavailable, OSError) as exc:
        ctx.metrics.errors.labels("Task").inc()
        raise kopf.TemporaryError(f"engine unavailable: {exc}", delay=5) from exc
    ctx.metrics.submissions.labels("created" if result.created else "existing").inc()
    kopf.info(body, reason="Submitted", message=f"task {result.task_id} on queue {spec.queue}")
    return mirrored_status(task, datetime.now(UTC), status.get("conditions") or [])


def _reject(ctx: OperatorContext, body: Any, reason: str, message: str) -> dict[str, Any]:
    ctx.metrics.submissions.labels(reason).inc()
    kopf.warn(body, reason=reason, message=message)
    return rejected_status(reason, message, (body.get("status") or {}).get("conditions") or [])


async def follow_task(ctx: OperatorContext, body: Any) -> dict[str, Any] | None:
    """The status to write when the engine's record moved on (None: unchanged)."""
    status = dict(body.get("status") or {})
    task_id = status.get("taskId")
    if not task_id or is_finished(status):
        return None
    task = await _get(ctx, task_id)
    if task is None:
        return rejected_status(
            "TaskNotFound",
            f"task {task_id} is gone from the engine",
            status.get("conditions") or [],
        )
    wanted = mirrored_status(task, datetime.now(UTC), status.get("conditions") or [])
    return wanted if status_changed(status, wanted) else None


def expired(body: Any, now: datetime) -> bool:
    """Finished for longer than ``ttlSecondsAfterFinished``."""
    ttl = (body.get("spec") or {}).get("ttlSecondsAfterFinished")
    status = body.get("status") or {}
    done = status.get("completionTime")
    if ttl is None or not is_finished(status):
        return False
    if not done:
        return True
    finished = datetime.strptime(done, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    return now >= finished + timedelta(seconds=int(ttl))


async def cancel_task(ctx: OperatorContext, body: Any) -> None:
    status = dict(body.get("status") or {})
    task_id = status.get("taskId")
    if not task_id or is_finished(status):
        return
    try:
        task = await ctx.engine.cancel(task_id)
    except NotFound:
        return
    except (Unavailable, OSError) as exc:
        raise kopf.TemporaryError(f"engine unavailable: {exc}", delay=5) from exc
    log.info("cancelled", extra={"task": task_id, "state": task.state.value})


async def _get(ctx: OperatorContext, task_id: str) -> TaskRecord | None:
    try:
        return await ctx.engine.get(task_id)
    except NotFound:
        return None
    except (Unavailable, OSError) as exc:
        raise kopf.TemporaryError(f"engine unavailable: {exc}", delay=5) from exc
