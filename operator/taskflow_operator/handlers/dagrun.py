"""DagRun handlers: submit on create/resume, cancel on delete, and one follower for all runs
that mirrors them, in batches, and applies cancel and retry.

The follower starts with the operator, or, when the engine was not connected yet at start,
with the first DagRun handled (kopf handles objects only once its start-up succeeded).
"""

from __future__ import annotations

import asyncio
from typing import Any

import kopf

from taskflow_operator.context import OperatorContext, context
from taskflow_operator.crd import DAGRUN, GROUP, VERSION
from taskflow_operator.reconcile.dagruns import DagRunFollower, cancel_dagrun, submit_dagrun
from taskflow_operator.settings import OperatorConfig

RESOURCE = (GROUP, VERSION, DAGRUN.plural)


def follower(memo: kopf.Memo, ctx: OperatorContext) -> DagRunFollower:
    """The operator's one follower, started on first use."""
    found = getattr(memo, "dagruns", None)
    if isinstance(found, DagRunFollower):
        return found
    made = DagRunFollower(ctx)
    memo.dagruns = made
    # In the context's background tasks: stopped before the engine is closed.
    ctx.background.append(asyncio.create_task(made.run(ctx.stop)))
    return made


def register(registry: kopf.OperatorRegistry, config: OperatorConfig) -> None:
    @kopf.on.startup(registry=registry)
    async def follow_dagruns(memo: kopf.Memo, **_: Any) -> None:
        ctx = getattr(memo, "ctx", None)
        if isinstance(ctx, OperatorContext):  # else: with the first DagRun handled
            follower(memo, ctx)

    @kopf.on.resume(*RESOURCE, registry=registry)
    @kopf.on.create(*RESOURCE, registry=registry)
    async def submit(body: kopf.Body, memo: kopf.Memo, patch: kopf.Patch, **_: Any) -> None:
        ctx = context(memo)
        follower(memo, ctx)
        status = await submit_dagrun(ctx, body)
        if status is not None:
            patch.status.update(status)

    @kopf.on.field(*RESOURCE, field="spec.cancel", registry=registry)
    @kopf.on.field(*RESOURCE, field="spec.retryGeneration", registry=registry)
    async def controls(memo: kopf.Memo, **_: Any) -> None:
        follower(memo, context(memo)).wake()

    @kopf.on.delete(*RESOURCE, registry=registry)
    async def cancel(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        await cancel_dagrun(context(memo), body)
