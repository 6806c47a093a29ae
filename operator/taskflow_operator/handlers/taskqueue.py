"""TaskQueue handlers: reconcile on create/update/resume; a daemon per queue keeps the
Deployment in step (drift repair) and scales it every ``pollIntervalSeconds``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import kopf

from taskflow.errors import Unavailable
from taskflow.keys import QueueRef
from taskflow_operator.context import context
from taskflow_operator.crd import GROUP, TASKQUEUE, VERSION
from taskflow_operator.reconcile.queues import poll_interval, reconcile_queue, report_of
from taskflow_operator.reconcile.retire import cancel_unfinished
from taskflow_operator.reporting import QueueReport
from taskflow_operator.settings import OperatorConfig

log = logging.getLogger("taskflow.operator.taskqueue")
RESOURCE = (GROUP, VERSION, TASKQUEUE.plural)
DELETE_RETRIES = 12  # 5 s apart: a minute for the engine to come back


def register(registry: kopf.OperatorRegistry, config: OperatorConfig) -> None:
    @kopf.on.resume(*RESOURCE, registry=registry)
    @kopf.on.create(*RESOURCE, registry=registry)
    @kopf.on.update(*RESOURCE, field="spec", registry=registry)
    async def reconcile(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        await reconcile_queue(context(memo), body, scale=False)

    @kopf.on.delete(*RESOURCE, registry=registry, retries=DELETE_RETRIES)
    async def retire(body: kopf.Body, memo: kopf.Memo, retry: int, **_: Any) -> None:
        """Cancel the queue's unfinished tasks (see ``reconcile.retire``). With the engine
        down, retry for a while, then let the deletion go on, saying what was left."""
        meta = body["metadata"]
        ref = QueueRef(meta["namespace"], meta["name"])
        try:
            n = await cancel_unfinished(context(memo), ref)
        except (Unavailable, OSError) as exc:
            if retry + 1 >= DELETE_RETRIES:
                kopf.warn(body, reason="TasksLeft", message=f"tasks not cancelled: {exc}")
                return
            raise kopf.TemporaryError(f"engine unavailable: {exc}", delay=5) from exc
        if n:
            kopf.info(body, reason="TasksCancelled", message=f"{n} unfinished task(s) cancelled")

    @kopf.daemon(*RESOURCE, registry=registry, cancellation_timeout=10.0)
    async def autoscale(
        body: kopf.Body, memo: kopf.Memo, stopped: kopf.DaemonStopped, **_: Any
    ) -> None:
        ctx = context(memo)
        key = (body["metadata"]["namespace"], body["metadata"]["name"])
        report = report_of(ctx, *key)
        ctx.leadership.hold()
        unexpected: str | None = None
        try:
            while not stopped:
                try:
                    await reconcile_queue(ctx, body, scale=True)
                    unexpected = None
                except Exception as exc:
                    # A defect, not something the user can fix: the traceback once, then a line
                    # per new message, and the same backoff as a refused Deployment.
                    ctx.metrics.errors.labels("TaskQueue").inc()
                    report.failed_passes += 1
                    if unexpected is None:
                        log.exception("taskqueue pass failed", extra={"queue": "/".join(key)})
                    elif unexpected != str(exc):
                        log.error("taskqueue pass failed: %s", exc, extra={"queue": "/".join(key)})
                    unexpected = str(exc)
                await _pause(report, report.delay(poll_interval(body)))
        finally:
            ctx.leadership.release()
            ctx.histories.pop(key, None)
            ctx.locks.pop(key, None)
            ctx.reports.pop(key, None)
            ctx.metrics.forget_queue(*key)


async def _pause(report: QueueReport, seconds: float) -> None:
    """Sleep ``seconds``, less when the queue recovered meanwhile (an event handler's pass
    succeeded: the backoff is over). kopf cancels the daemon when it stops."""
    report.recovered.clear()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(report.recovered.wait(), seconds)
