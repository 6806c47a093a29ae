"""TaskQueue schedules: one keeper syncs every queue's ``spec.schedules`` with the engine; a
change of the field, or a deleted queue, makes it look at once.

The keeper starts with the operator, or, when the engine was not connected yet at start,
with the first TaskQueue event (kopf watches objects only once its start-up succeeded).
"""

from __future__ import annotations

import asyncio
from typing import Any

import kopf

from taskflow_operator.context import OperatorContext, context
from taskflow_operator.crd import GROUP, TASKQUEUE, VERSION
from taskflow_operator.reconcile.schedules import ScheduleKeeper
from taskflow_operator.settings import OperatorConfig

RESOURCE = (GROUP, VERSION, TASKQUEUE.plural)


def keeper(memo: kopf.Memo, ctx: OperatorContext) -> ScheduleKeeper:
    """The operator's one keeper, started on first use."""
    found = getattr(memo, "schedules", None)
    if isinstance(found, ScheduleKeeper):
        return found
    made = ScheduleKeeper(ctx)
    memo.schedules = made
    # In the context's background tasks: stopped before the engine is closed.
    ctx.background.append(asyncio.create_task(made.run(ctx.stop)))
    return made


def register(registry: kopf.OperatorRegistry, config: OperatorConfig) -> None:
    @kopf.on.startup(registry=registry)
    async def keep_schedules(memo: kopf.Memo, **_: Any) -> None:
        ctx = getattr(memo, "ctx", None)
        if isinstance(ctx, OperatorContext):  # else: with the first TaskQueue event
            keeper(memo, ctx)

    @kopf.on.field(*RESOURCE, field="spec.schedules", registry=registry)
    async def schedules_changed(memo: kopf.Memo, **_: Any) -> None:
        keeper(memo, context(memo)).wake()

    @kopf.on.event(*RESOURCE, registry=registry)
    async def queue_seen(memo: kopf.Memo, type: str, **_: Any) -> None:
        started = keeper(memo, context(memo))
        if type == "DELETED":
            started.wake()
