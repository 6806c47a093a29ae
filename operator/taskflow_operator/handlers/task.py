"""Task handlers: submit on create/resume, mirror the engine with a timer, cancel on delete."""

from __future__ import annotations

from typing import Any

import kopf

from taskflow_operator.context import context
from taskflow_operator.crd import GROUP, TASK, VERSION
from taskflow_operator.reconcile.tasks import cancel_task, follow_task, submit_task
from taskflow_operator.settings import OperatorConfig
from taskflow_operator.taskstatus import is_finished

RESOURCE = (GROUP, VERSION, TASK.plural)


def _watched(status: kopf.Status, **_: Any) -> bool:
    """Submitted Tasks are followed until they finish. (Finished ones with a TTL are deleted
    by ``reconcile.ttl``: a timer still running on an object being deleted can leave kopf's
    finalizer behind.)"""
    return bool(status.get("taskId")) and not is_finished(dict(status))


def register(registry: kopf.OperatorRegistry, config: OperatorConfig) -> None:
    @kopf.on.resume(*RESOURCE, registry=registry)
    @kopf.on.create(*RESOURCE, registry=registry)
    async def submit(body: kopf.Body, memo: kopf.Memo, patch: kopf.Patch, **_: Any) -> None:
        status = await submit_task(context(memo), body)
        if status is not None:
            patch.status.update(status)

    @kopf.timer(*RESOURCE, registry=registry, interval=config.task_poll_seconds, when=_watched)
    async def follow(body: kopf.Body, memo: kopf.Memo, patch: kopf.Patch, **_: Any) -> None:
        status = await follow_task(context(memo), body)
        if status is not None:
            patch.status.update(status)

    @kopf.on.delete(*RESOURCE, registry=registry)
    async def cancel(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        await cancel_task(context(memo), body)
