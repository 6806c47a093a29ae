"""DagRun handlers: submit on create/resume, cancel on delete, and one follower for all runs
(started with the operator) that mirrors them, in batches, and applies cancel and retry."""

from __future__ import annotations

import asyncio
from typing import Any

import kopf

from taskflow_operator.context import context
from taskflow_operator.crd import DAGRUN, GROUP, VERSION
from taskflow_operator.reconcile.dagruns import DagRunFollower, cancel_dagrun, submit_dagrun
from taskflow_operator.settings import OperatorConfig

RESOURCE = (GROUP, VERSION, DAGRUN.plural)


def _follower(memo: kopf.Memo) -> DagRunFollower | None:
    follower = getattr(memo, "dagruns", None)
    return follower if isinstance(follower, DagRunFollower) else None


def register(registry: kopf.OperatorRegistry, config: OperatorConfig) -> None:
    @kopf.on.startup(registry=registry)
    async def follow_dagruns(memo: kopf.Memo, **_: Any) -> None:
        ctx = context(memo)  # a TemporaryError until the engine is connected
        follower = DagRunFollower(ctx)
        memo.dagruns = follower
        # In the context's background tasks: stopped before the engine is closed.
        ctx.background.append(asyncio.create_task(follower.run(ctx.stop)))

    @kopf.on.resume(*RESOURCE, registry=registry)
    @kopf.on.create(*RESOURCE, registry=registry)
    async def submit(body: kopf.Body, memo: kopf.Memo, patch: kopf.Patch, **_: Any) -> None:
        status = await submit_dagrun(context(memo), body)
        if status is not None:
            patch.status.update(status)

    @kopf.on.field(*RESOURCE, field="spec.cancel", registry=registry)
    @kopf.on.field(*RESOURCE, field="spec.retryGeneration", registry=registry)
    async def controls(memo: kopf.Memo, **_: Any) -> None:
        follower = _follower(memo)
        if follower is not None:
            follower.wake()

    @kopf.on.delete(*RESOURCE, registry=registry)
    async def cancel(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        await cancel_dagrun(context(memo), body)
