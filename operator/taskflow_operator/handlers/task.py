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
from taskflow.waiting import stopped_within
from taskflow_operator.context import OperatorContext, context
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


def start_following(
    ctx: OperatorContext, config: OperatorConfig, followed: Any, expiring: Any
) -> None:
    """Start the Task mirror and the TTL sweeper once, as background tasks of ``ctx``."""
    if ctx.following:
        return
    ctx.following = True
    ctx.background.append(asyncio.create_task(_follow(ctx, config, followed, expiring)))


async def _follow(
    ctx: OperatorContext, config: OperatorConfig, followed: Any, expiring: Any
) -> None:
    small = dataclasses.replace(Settings.from_env(), db_pool_size=config.mirror_pool_size)
    while ctx.mirror_engine is None:
        try:
            store = await TaskStore.open(small)
        except UNAVAILABLE_ERRORS as exc:
            log.warning("the Task mirror waits for PostgreSQL: %s", exc)
            if await stopped_within(ctx.stop, 5):
                return
            continue
        ctx.mirror_engine = Engine(small, store, ctx.engine.dispatcher)
    mirror = task_mirror(ctx, followed, ctx.mirror_engine)
    sweeper = TtlSweeper(ctx, expiring)
    await asyncio.gather(
        mirror.run(ctx.stop, config.task_poll_seconds, lambda: ctx.leadership.active),
        sweeper.run(ctx.stop),
    )


class QuietTasks(logging.Filter):
    """kopf posts its own per-object log lines as Events ("Handler 'submit' succeeded",
    "Creation is processed"): two Events per Task. Below WARNING, not for Tasks."""

    def filter(self, record: logging.LogRecord) -> bool:
        ref = getattr(record, "k8s_ref", None) or {}
        return record.levelno >= logging.WARNING or ref.get("kind") != TASK.kind


def quiet_task_events() -> None:
    for handler in logging.getLogger("kopf.objects").handlers:
        if type(handler).__name__ == "K8sPoster" and not any(
            isinstance(f, QuietTasks) for f in handler.filters
        ):
            handler.addFilter(QuietTasks())


def register(registry: kopf.OperatorRegistry, config: OperatorConfig) -> None:
    quiet_task_events()

    @kopf.index(*QUEUES, id="task_queues", registry=registry)
    def task_queues(body: kopf.Body, **_: Any) -> dict[Any, Any]:
        return queue_entry(body)

    @kopf.index(*RESOURCE, id="followed_tasks", registry=registry)
    def followed_tasks(body: kopf.Body, **_: Any) -> dict[Any, Any]:
        return followed_task(body)

    @kopf.index(*RESOURCE, id="expiring_tasks", registry=registry)
    def expiring_tasks(body: kopf.Body, **_: Any) -> dict[Any, Any]:
        return expiring_entry(body)

    @kopf.on.cleanup(registry=registry)
    async def close(memo: kopf.Memo, **_: Any) -> None:
        ctx = getattr(memo, "ctx", None)
        if not isinstance(ctx, OperatorContext):
            return  # it never started
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
        ctx = context(memo)
        # kopf hands each index to every handler as a keyword named by its id; the first
        # Task seen (a resume at start-up, or a create) starts the mirror and the TTL sweeper.
        start_following(ctx, config, kwargs["followed_tasks"], kwargs["expiring_tasks"])
        outcome = await submit_task(ctx, body, kwargs["task_queues"], retry)
        if outcome.status is not None:
            patch.status.update(outcome.status)
        if outcome.retry_in is not None:
            raise kopf.TemporaryError(outcome.why, delay=outcome.retry_in)

    @kopf.on.delete(*RESOURCE, registry=registry)
    async def cancel(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        await cancel_task(context(memo), body)
