"""Task handlers: submit on create/resume, cancel on delete; kopf indexes feed the batched
mirror (every unfinished Task, one engine query a tick), the TTL sweeper and submits (the
TaskQueue a Task names is read from an index, not the API)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Any

import kopf

from taskflow.config import Settings
from taskflow.engine import UNAVAILABLE_ERRORS, Engine
from taskflow.store.tasks import TaskStore
from taskflow_operator.context import context
from taskflow_operator.crd import GROUP, TASK, TASKQUEUE, VERSION
from taskflow_operator.reconcile.tasks import (
    cancel_task,
    followed_task,
    queue_entry,
    submit_task,
    task_mirror,
)
from taskflow_operator.reconcile.ttl import TtlSweeper, expiring_entry
from taskflow_operator.settings import OperatorConfig

log = logging.getLogger("taskflow.operator.task")
RESOURCE = (GROUP, VERSION, TASK.plural)
QUEUES = (GROUP, VERSION, TASKQUEUE.plural)


def register(registry: kopf.OperatorRegistry, config: OperatorConfig) -> None:
    @kopf.index(*QUEUES, id="task_queues", registry=registry)
    def task_queues(body: kopf.Body, **_: Any) -> dict[Any, Any]:
        return queue_entry(body)

    @kopf.index(*RESOURCE, id="followed_tasks", registry=registry)
    def followed_tasks(body: kopf.Body, **_: Any) -> dict[Any, Any]:
        return followed_task(body)

    @kopf.index(*RESOURCE, id="expiring_tasks", registry=registry)
    def expiring_tasks(body: kopf.Body, **_: Any) -> dict[Any, Any]:
        return expiring_entry(body)

    @kopf.on.startup(registry=registry)
    async def follow(memo: kopf.Memo, **kwargs: Any) -> None:
        # kopf hands each index to every handler as a keyword named by its id.
        followed: kopf.Index[Any, Any] = kwargs["followed_tasks"]
        expiring: kopf.Index[Any, Any] = kwargs["expiring_tasks"]
        ctx = context(memo)
        if ctx.mirror_engine is None:
            settings = Settings.from_env()
            small = dataclasses.replace(settings, db_pool_size=config.mirror_pool_size)
            try:
                store = await TaskStore.open(small)
            except UNAVAILABLE_ERRORS as exc:
                raise kopf.TemporaryError(f"PostgreSQL: {exc}", delay=5) from exc
            ctx.mirror_engine = Engine(small, store, ctx.engine.dispatcher)
        mirror = task_mirror(ctx, followed, ctx.mirror_engine)
        sweeper = TtlSweeper(ctx, expiring)
        leading = lambda: ctx.leadership.active  # noqa: E731
        ctx.background.append(
            asyncio.create_task(mirror.run(ctx.stop, config.task_poll_seconds, leading))
        )
        ctx.background.append(asyncio.create_task(sweeper.run(ctx.stop)))

    @kopf.on.cleanup(registry=registry)
    async def close(memo: kopf.Memo, **_: Any) -> None:
        ctx = context(memo)
        ctx.stop.set()
        await asyncio.gather(*ctx.background, return_exceptions=True)
        if ctx.mirror_engine is not None:
            await ctx.mirror_engine.store.close()
            ctx.mirror_engine = None

    @kopf.on.resume(*RESOURCE, registry=registry)
    @kopf.on.create(*RESOURCE, registry=registry)
    async def submit(
        body: kopf.Body, memo: kopf.Memo, patch: kopf.Patch, retry: int, **kwargs: Any
    ) -> None:
        outcome = await submit_task(context(memo), body, kwargs["task_queues"], retry)
        if outcome.status is not None:
            patch.status.update(outcome.status)
        if outcome.retry_in is not None:
            raise kopf.TemporaryError(outcome.why, delay=outcome.retry_in)

    @kopf.on.delete(*RESOURCE, registry=registry)
    async def cancel(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        await cancel_task(context(memo), body)
