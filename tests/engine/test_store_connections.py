"""Store connections plan every execution for its own batch: a cached generic plan of the
array statements (``unnest``) assumes ten rows and made batches of 1,000 run twenty times
slower once a statement had run five times."""

from __future__ import annotations

import asyncio

from taskflow.engine import Engine
from taskflow.models import TaskSubmission


async def test_every_store_connection_plans_for_its_own_parameters(engine: Engine) -> None:
    seen: list[str] = []
    hold = asyncio.Event()

    async def show() -> None:
        async with engine.store.pool.connection() as conn:
            cur = await conn.execute("SHOW plan_cache_mode")
            row = await cur.fetchone()
            assert row is not None
            seen.append(row[0])
            if len(seen) < 2:
                await hold.wait()  # keep this connection so the other needs a second one
            hold.set()

    await asyncio.wait_for(asyncio.gather(show(), show()), timeout=30)
    assert seen == ["force_custom_plan", "force_custom_plan"]


async def test_a_batch_submitted_after_many_others_still_inserts_every_row(
    engine: Engine,
) -> None:
    for round_ in range(8):  # past the five executions after which a plan may be cached
        specs = [
            TaskSubmission(queue="plans", handler="h", idempotency_key=f"{round_}-{i}")
            for i in range(200)
        ]
        results = await engine.submit(specs)
        assert sum(r.created for r in results) == 200
    again = await engine.submit([TaskSubmission(queue="plans", handler="h", idempotency_key="7-5")])
    assert not again[0].created
