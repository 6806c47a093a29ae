"""Every store connection plans with its parameters (``plan_cache_mode = force_custom_plan``):
a generic plan of an ``unnest`` of arrays made a 1,000-key lookup take seconds, growing with
the table."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import replace

from taskflow.config import Settings
from taskflow.engine import Engine
from taskflow.store.tasks import TaskStore


async def test_every_connection_of_the_store_forces_custom_plans(
    engine: Engine, settings: Settings
) -> None:
    store = await TaskStore.open(replace(settings, db_pool_size=3), min_size=3)
    try:
        async with contextlib.AsyncExitStack() as stack:
            conns = [await stack.enter_async_context(store.pool.connection()) for _ in range(3)]
            modes = await asyncio.gather(*(c.execute("SHOW plan_cache_mode") for c in conns))
            assert [(await m.fetchone()) for m in modes] == [("force_custom_plan",)] * 3
    finally:
        await store.close()


async def test_a_statement_prepared_by_repetition_never_gets_a_generic_plan(
    engine: Engine, settings: Settings
) -> None:
    store = await TaskStore.open(replace(settings, db_pool_size=1), min_size=1)
    try:
        for _ in range(12):  # psycopg prepares at the 5th run; PostgreSQL may go generic at 6
            keys = [("default", "jobs", uuid.uuid4().hex) for _ in range(50)]
            assert await store.by_idempotency_keys(keys) == {}
        async with store.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT generic_plans, custom_plans FROM pg_prepared_statements "
                "WHERE statement LIKE '%idempotency_key IN%' OR statement LIKE '%unnest%'"
            )
            rows = await cur.fetchall()
        assert rows, "the lookup was not prepared: this test no longer tests anything"
        assert all(generic == 0 for generic, _ in rows), rows
    finally:
        await store.close()
