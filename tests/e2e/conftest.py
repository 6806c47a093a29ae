"""The whole system in one process: API server, housekeeping and a worker running the
bundled example handlers, on the test Redis and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from taskflow.api import ApiServer
from taskflow.config import Settings
from taskflow.engine import Engine
from taskflow.housekeeping import Housekeeper
from taskflow.keys import QueueRef
from taskflow.store import apply_migrations
from taskflow_worker.examples import router
from taskflow_worker.runtime import Worker, WorkerConfig


@pytest.fixture
async def stack(redis_url: str, database_url: str) -> AsyncIterator[str]:
    """Starts everything and yields the gRPC target (``127.0.0.1:PORT``)."""
    settings = Settings(redis_url=redis_url, database_url=database_url, sweep_interval=0.5)
    await apply_migrations(database_url)
    engine = await Engine.connect(settings)
    server = ApiServer(engine, grpc_addr="127.0.0.1:0", http_addr="127.0.0.1:0")
    await server.start()
    stop = asyncio.Event()
    worker = Worker(router, settings, WorkerConfig(queues=[QueueRef("default", "default")]))
    background = [
        asyncio.create_task(Housekeeper(engine).run(stop)),
        asyncio.create_task(worker.run(stop)),
    ]
    try:
        yield f"127.0.0.1:{server.grpc_port}"
    finally:
        stop.set()
        await asyncio.gather(*background)
        await server.stop(1)
        await engine.close()
