"""The whole system in one process with every HTTP endpoint: the API server, housekeeping and
a worker serving ``/metrics`` on its health port, on the test Redis and PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from taskflow.api import ApiServer
from taskflow.config import Settings
from taskflow.embedded import free_port
from taskflow.engine import Engine
from taskflow.housekeeping import Housekeeper
from taskflow.keys import QueueRef
from taskflow.store import apply_migrations
from taskflow_worker import PermanentError, Router, TaskContext
from taskflow_worker.runtime import WorkerConfig
from taskflow_worker.serve import serve_worker

QUEUE = "observed"

router = Router()


@router.task("ok")
async def ok(ctx: TaskContext, payload: Any) -> Any:
    return payload


@router.task("boom")
async def boom(ctx: TaskContext, payload: Any) -> None:
    raise ValueError("boom")


@router.task("permanent")
async def permanent(ctx: TaskContext, payload: Any) -> None:
    raise PermanentError("no use retrying")


@router.task("stuck", timeout=0.2)
def stuck(ctx: TaskContext, payload: Any) -> None:
    """A sync handler that ignores its timeout for ``payload`` seconds."""
    deadline = time.monotonic() + float(payload)
    while time.monotonic() < deadline:
        time.sleep(0.01)


@dataclass
class Stack:
    target: str  # gRPC
    api_metrics: str  # URLs of the /metrics endpoints
    worker_metrics: str
    engine: Engine
    settings: Settings


@pytest.fixture
async def stack(redis_url: str, database_url: str) -> AsyncIterator[Stack]:
    settings = Settings(redis_url=redis_url, database_url=database_url, sweep_interval=0.2)
    await apply_migrations(database_url)
    engine = await Engine.connect(settings)
    server = ApiServer(engine, grpc_addr="127.0.0.1:0", http_addr="127.0.0.1:0")
    await server.start()
    stop = asyncio.Event()
    port = free_port()
    config = WorkerConfig(queues=[QueueRef("default", QUEUE)], concurrency=4, drain_grace=1)
    background = [
        asyncio.create_task(Housekeeper(engine).run(stop)),
        asyncio.create_task(serve_worker(router, settings, config, health_port=port, stop=stop)),
    ]
    try:
        yield Stack(
            target=f"127.0.0.1:{server.grpc_port}",
            api_metrics=f"http://127.0.0.1:{server.http_port}/metrics",
            worker_metrics=f"http://127.0.0.1:{port}/metrics",
            engine=engine,
            settings=settings,
        )
    finally:
        stop.set()
        await asyncio.gather(*background)
        await server.stop(1)
        await engine.close()
