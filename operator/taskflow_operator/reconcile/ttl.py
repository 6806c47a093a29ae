"""Deletes finished Tasks once their ``ttlSecondsAfterFinished`` has passed, while this
operator leads (like Kubernetes' TTL-after-finished controller does for Jobs)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime

from taskflow_operator.context import OperatorContext
from taskflow_operator.crd import TASK
from taskflow_operator.reconcile.tasks import expired

log = logging.getLogger("taskflow.operator.ttl")


async def delete_expired_tasks(ctx: OperatorContext) -> int:
    namespaces: list[str | None] = list(ctx.config.namespaces) or [None]
    now = datetime.now(UTC)
    deleted = 0
    for namespace in namespaces:
        for body in await ctx.kube.list_objects(TASK.plural, namespace):
            meta = body.get("metadata") or {}
            if meta.get("deletionTimestamp") or not expired(body, now):
                continue
            await ctx.kube.delete_object(TASK.plural, meta["namespace"], meta["name"])
            log.info("deleted finished task", extra={"task": f"{meta['namespace']}/{meta['name']}"})
            deleted += 1
    return deleted


async def ttl_loop(ctx: OperatorContext, stop: asyncio.Event) -> None:
    """Every ``task_poll_seconds`` while this operator leads, until ``stop``."""
    while not stop.is_set():
        if ctx.leadership.active:
            try:
                await delete_expired_tasks(ctx)
            except Exception:
                log.exception("deleting expired tasks failed; retrying")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=ctx.config.task_poll_seconds)
