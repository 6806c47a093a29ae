"""``Task`` resources: submitted once (idempotent on the object's UID), mirrored, cancelled."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import kopf
from pydantic import ValidationError

from taskflow.engine import Engine
from taskflow.errors import InvalidArgument, NotFound, PayloadTooLarge, Unavailable
from taskflow.models import TaskRecord, validate_submission
from taskflow_operator.context import OperatorContext
from taskflow_operator.crd import GROUP, TASK, VERSION
from taskflow_operator.crd.task import TaskPhase, TaskSpec
from taskflow_operator.crd.taskqueue import TaskQueueSpec
from taskflow_operator.reconcile.mirror import (
    BatchMirror,
    Followed,
    FollowedIndex,
    Key,
    followed_entry,
)
from taskflow_operator.taskstatus import (
    is_finished,
    mirrored_status,
    rejected_status,
    status_changed,
    waiting_status,
)

log = logging.getLogger("taskflow.operator.tasks")
PLURAL = "tasks"
QUEUE_NOT_FOUND = "QueueNotFound"
INVALID = "InvalidSpec"
MAX_WAIT_SECONDS = 60
MAX_EVENT_CHARS = 1024
#: kopf's index of TaskQueue specs by ``(namespace, name)``.
QueueIndex = Mapping[Key, Iterable[Mapping[str, Any]]]


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


@dataclass(frozen=True)
class Outcome:
    """What one submit pass decided: the status to write, and whether to try again later."""

    status: dict[str, Any] | None
    retry_in: float | None = None
    why: str = ""


def retry_delay(retry: int) -> float:
    """Backoff while a Task waits for its TaskQueue: 1 s, 2 s, 4 s ... at most a minute."""
    return float(min(MAX_WAIT_SECONDS, 2 ** min(retry, 6)))


def queue_entry(body: Any) -> dict[Key, dict[str, Any]]:
    """A TaskQueue's entry in the operator's index of them: its spec by (namespace, name)."""
    meta = body["metadata"]
    return {(meta["namespace"], meta["name"]): dict(body.get("spec") or {})}


def queue_spec(queues: QueueIndex, namespace: str, name: str) -> TaskQueueSpec | None:
    """The TaskQueue from the index kopf keeps of them (no API read per Task)."""
    for spec in queues.get((namespace, name)) or ():
        return TaskQueueSpec.model_validate(dict(spec))
    return None


async def submit_task(ctx: OperatorContext, body: Any, queues: QueueIndex, retry: int) -> Outcome:
    """Submit when not yet submitted. The status is built from the submit's answer, not read
    back: the mirror brings it up to date on its next tick."""
    status = dict(body.get("status") or {})
    if status.get("taskId") or is_finished(status):
        return Outcome(None)
    meta = body["metadata"]
    ns, uid, name = meta["namespace"], meta["uid"], meta["name"]
    conditions = status.get("conditions") or []
    try:
        spec = TaskSpec.model_validate(dict(body["spec"]))
    except ValidationError as exc:
        return _reject(ctx, body, INVALID, f"spec: {exc.errors()[0]['msg']}")
    queue = queue_spec(queues, ns, spec.queue)
    if queue is None:
        message = f"waiting for TaskQueue {spec.queue!r} in namespace {ns}"
        wanted = waiting_status(QUEUE_NOT_FOUND, message, conditions)
        ctx.metrics.submissions.labels(QUEUE_NOT_FOUND).inc()
        changed = status_changed(status, wanted)
        return Outcome(wanted if changed else None, retry_delay(retry), message)
    try:
        sub = validate_submission(submission(ns, uid, name, spec, queue), "spec")
        (result,) = await ctx.engine.submit([sub])
    except (InvalidArgument, PayloadTooLarge) as exc:
        return _reject(ctx, body, INVALID, str(exc))
    except (Unavailable, OSError) as exc:
        ctx.metrics.errors.labels("Task").inc()
        raise kopf.TemporaryError(f"engine unavailable: {exc}", delay=5) from exc
    ctx.metrics.submissions.labels("created" if result.created else "existing").inc()
    # No status write here: the mirror finds the task by its idempotency key on its next tick
    # and writes its id and state, often already its end (one write instead of two).
    return Outcome(None)


def _reject(ctx: OperatorContext, body: Any, reason: str, message: str) -> Outcome:
    ctx.metrics.submissions.labels(reason).inc()
    warn(ctx, body, reason, message)
    conditions = (body.get("status") or {}).get("conditions") or []
    return Outcome(rejected_status(reason, message, conditions))


def warn(ctx: OperatorContext, body: Any, reason: str, message: str) -> None:
    """A Warning Event on the object, within the operator's event budget."""
    if ctx.events.take():
        kopf.warn(body, reason=reason, message=message[:MAX_EVENT_CHARS])


# -- mirroring ------------------------------------------------------------------------------


KEY_REF = "key:"


def key_ref(namespace: str, queue: str, uid: str) -> str:
    """How the mirror names a Task submitted but not yet recorded in its status."""
    return f"{KEY_REF}{namespace}/{queue}/{idempotency_key(uid)}"


def _parse_key_ref(ref: str) -> tuple[str, str, str]:
    namespace, queue, key = ref.removeprefix(KEY_REF).split("/", 2)
    return (namespace, queue, key)


def followed_task(body: Any) -> dict[Key, Followed]:
    """The mirror's index entry of an unfinished Task: by task id once its status has one,
    else by idempotency key (it may have been submitted since)."""
    status = dict(body.get("status") or {})
    if is_finished(status):
        return {}
    if status.get("taskId"):
        return followed_entry(body, "taskId")
    meta = body.get("metadata") or {}
    queue = (body.get("spec") or {}).get("queue")
    if not isinstance(queue, str) or not queue or meta.get("deletionTimestamp"):
        return {}
    entry = Followed(
        meta["namespace"],
        meta["name"],
        meta["uid"],
        key_ref(meta["namespace"], queue, meta["uid"]),
        status,
    )
    return {entry.key: entry}


def is_finished_status(status: Mapping[str, Any]) -> bool:
    return is_finished(dict(status))


def task_mirror(
    ctx: OperatorContext, index: FollowedIndex, engine: Engine
) -> BatchMirror[TaskRecord]:
    """The mirror of every followed Task: one ``engine.get_many`` a tick (and one read by
    idempotency key for the Tasks submitted since the last tick)."""

    async def fetch(refs: list[str]) -> Mapping[str, TaskRecord]:
        ids = [r for r in refs if not r.startswith(KEY_REF) and _is_task_id(r)]
        keys = {_parse_key_ref(r): r for r in refs if r.startswith(KEY_REF)}
        found: dict[str, TaskRecord] = dict(await engine.get_many(ids))
        if keys:
            by_key = await engine.get_by_idempotency_keys(list(keys))
            found.update({keys[k]: task for k, task in by_key.items()})
        return found

    def render(entry: Followed, task: TaskRecord | None) -> dict[str, Any]:
        conditions = entry.status.get("conditions") or []
        if task is None and entry.ref.startswith(KEY_REF):
            return dict(entry.status)  # not submitted yet: nothing to write
        if task is None:
            message = f"task {entry.ref} is gone from the engine"
            return rejected_status("TaskNotFound", message, conditions)
        return mirrored_status(task, datetime.now(UTC), conditions)

    async def patch(namespace: str, name: str, status: dict[str, Any]) -> bool:
        return await ctx.kube.patch_status_if_exists(PLURAL, namespace, name, status)

    def written(entry: Followed, status: dict[str, Any]) -> None:
        if status.get("phase") == TaskPhase.FAILED.value:
            reference = {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": TASK.kind,
                "metadata": {"namespace": entry.namespace, "name": entry.name, "uid": entry.uid},
            }
            warn(ctx, reference, TaskPhase.FAILED.value, status.get("error") or "failed")

    return BatchMirror(
        TASK.kind, index, fetch, render, patch, is_done=is_finished_status, written=written
    )


def _is_task_id(raw: str) -> bool:
    try:
        uuid.UUID(raw)
    except ValueError:
        log.warning("status.taskId is not a task id", extra={"task": raw})
        return False
    return True


async def cancel_task(ctx: OperatorContext, body: Any) -> None:
    """Cancel the task of a deleted Task (found by its idempotency key when its status does
    not name it yet)."""
    status = dict(body.get("status") or {})
    if is_finished(status):
        return
    task_id = status.get("taskId")
    try:
        if not task_id:
            meta = body["metadata"]
            queue = (body.get("spec") or {}).get("queue")
            if not isinstance(queue, str):
                return
            key = (meta["namespace"], queue, idempotency_key(meta["uid"]))
            found = await ctx.engine.get_by_idempotency_keys([key])
            if key not in found:
                return  # never submitted
            task_id = found[key].id
        task = await ctx.engine.cancel(task_id)
    except NotFound:
        return
    except (Unavailable, OSError) as exc:
        raise kopf.TemporaryError(f"engine unavailable: {exc}", delay=5) from exc
    log.info("cancelled", extra={"task": task_id, "state": task.state.value})
