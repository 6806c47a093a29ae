"""TaskQueue handlers: reconcile on create/update/resume; a daemon per queue keeps the
Deployment in step (drift repair) and scales it every ``pollIntervalSeconds``."""

from __future__ import annotations

import logging
from typing import Any

import kopf

from taskflow_operator.context import context
from taskflow_operator.crd import GROUP, TASKQUEUE, VERSION
from taskflow_operator.reconcile.queues import parse_spec, reconcile_queue
from taskflow_operator.settings import OperatorConfig

log = logging.getLogger("taskflow.operator.taskqueue")
RESOURCE = (GROUP, VERSION, TASKQUEUE.plural)


def register(registry: kopf.OperatorRegistry, config: OperatorConfig) -> None:
    @kopf.on.resume(*RESOURCE, registry=registry)
    @kopf.on.create(*RESOURCE, registry=registry)
    @kopf.on.update(*RESOURCE, field="spec", registry=registry)
    async def reconcile(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        await reconcile_queue(context(memo), body, scale=False)

    @kopf.daemon(*RESOURCE, registry=registry, cancellation_timeout=10.0)
    async def autoscale(
        body: kopf.Body, memo: kopf.Memo, stopped: kopf.DaemonStopped, **_: Any
    ) -> None:
        ctx = context(memo)
        key = (body["metadata"]["namespace"], body["metadata"]["name"])
        ctx.leadership.hold()
        try:
            while not stopped:
                try:
                    await reconcile_queue(ctx, body, scale=True)
                except kopf.PermanentError:
                    raise
                except Exception:
                    ctx.metrics.errors.labels("TaskQueue").inc()
                    log.exception("taskqueue pass failed", extra={"queue": "/".join(key)})
                await stopped.wait(parse_spec(body).autoscaling.poll_interval_seconds)
        finally:
            ctx.leadership.release()
            ctx.histories.pop(key, None)
            ctx.locks.pop(key, None)
            ctx.metrics.forget_queue(*key)
