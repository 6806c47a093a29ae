"""An idempotency key reused for a different task is an error, not a silent return of the
first task: the second caller would believe its (different) task was accepted."""

from __future__ import annotations

import json
from collections.abc import Sequence

from taskflow.engine import Engine
from taskflow.errors import AlreadyExists
from taskflow.models import SubmitResult, TaskSubmission
from taskflow.values import shown

Key = tuple[str, str, str]


def _key(spec: TaskSubmission) -> Key | None:
    if spec.idempotency_key is None:
        return None
    return (spec.namespace, spec.queue, spec.idempotency_key)


def _same(spec: TaskSubmission, handler: str, payload_json: str) -> bool:
    if spec.handler != handler:
        return False
    if spec.payload_json == payload_json:
        return True
    try:
        return bool(json.loads(spec.payload_json) == json.loads(payload_json))
    except ValueError:
        return False


def _conflict(path: str, spec: TaskSubmission, task_id: str) -> AlreadyExists:
    key = shown(spec.idempotency_key or "")
    return AlreadyExists(
        f"{path}.idempotency_key: {key} is already the key of task {task_id} in queue "
        f"{spec.queue!r}, with a different handler or payload; use a new key for a new task"
    )


async def check_before(
    engine: Engine, specs: Sequence[TaskSubmission], paths: Sequence[str]
) -> None:
    """Refuse the whole request if one of its keys names a different existing task (before
    anything is stored, so a batch is all or nothing)."""
    keyed = [(k, s, p) for s, p in zip(specs, paths, strict=True) if (k := _key(s)) is not None]
    if not keyed:
        return
    found = await engine.store.by_idempotency_keys(list({k for k, _, _ in keyed}))
    seen: dict[Key, TaskSubmission] = {}
    for key, spec, path in keyed:
        if key in found:
            task_id, handler, payload = found[key]
            if not _same(spec, handler, payload):
                raise _conflict(path, spec, task_id)
        earlier = seen.setdefault(key, spec)
        if earlier is not spec and not _same(spec, earlier.handler, earlier.payload_json):
            raise AlreadyExists(
                f"{path}.idempotency_key: {shown(spec.idempotency_key or '')} is used twice in "
                "this request for different tasks"
            )


async def check_after(
    engine: Engine,
    specs: Sequence[TaskSubmission],
    results: Sequence[SubmitResult],
    paths: Sequence[str],
) -> None:
    """Refuse a submission whose key turned out (at the store) to hold a different task."""
    reused = [(s, r, p) for s, r, p in zip(specs, results, paths, strict=True) if not r.created]
    if not reused:
        return
    tasks = {t.id: t for t in await engine.store.get_many([r.task_id for _, r, _ in reused])}
    for spec, result, path in reused:
        task = tasks.get(result.task_id)
        if task is not None and not _same(spec, task.handler, task.payload_json):
            raise _conflict(path, spec, task.id)
