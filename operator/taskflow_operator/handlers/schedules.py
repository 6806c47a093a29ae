"""TaskQueue schedules: one keeper (started with the operator) syncs ``spec.schedules`` with
the engine; a change of the field, or a deleted queue, makes it look at once."""

from __future__ import annotations

import asyncio
from typing import Any

import kopf

from taskflow_operator.context import context
from taskflow_operator.crd import GROUP, TASKQUEUE, VERSION
from taskflow_operator.reconcile.schedules import ScheduleKeeper
from taskflow_operator.settings import OperatorConfig

RESOURCE = (GROUP, VERSION, TASKQUEUE.plural)


def _wake(memo: kopf.Memo) -> None:
    keeper = getattr(memo, "schedules", None)
    if isinstance(keeper, ScheduleKeeper):
        keeper.wake()


def _deleted(type: str, **_: Any) -> bool:
    return type == "DELETED"


def register(registry: kopf.OperatorRegistry, config: OperatorConfig) -> None:
    @kopf.on.startup(registry=registry)
    async def keep_schedules(memo: kopf.Memo, **_: Any) -> None:
        ctx = context(memo)  # a TemporaryError until the engine is connected
        keeper = ScheduleKeeper(ctx)
        memo.schedules = keeper
        # In the context's background tasks: stopped before the engine is closed.
        ctx.background.append(asyncio.create_task(keeper.run(ctx.stop)))

    @kopf.on.field(*RESOURCE, field="spec.schedules", registry=registry)
    async def schedules_changed(memo: kopf.Memo, **_: Any) -> None:
        _wake(memo)

    @kopf.on.event(*RESOURCE, registry=registry, when=_deleted)
    async def queue_deleted(memo: kopf.Memo, **_: Any) -> None:
        _wake(memo)
