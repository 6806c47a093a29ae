"""What clients see while Redis or PostgreSQL is down."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest
import redis.asyncio as aioredis
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from psycopg_pool import AsyncConnectionPool

from taskflow.api import ApiServer
from taskflow.config import Settings
from taskflow.embedded import EmbeddedPostgres, free_port
from taskflow.engine import Engine
from taskflow.queue.dispatch import Dispatcher
from taskflow.store import TaskStore, apply_migrations
from taskflow_client.v1 import tasks_pb2 as pb
from taskflow_client.v1 import tasks_pb2_grpc as pb_grpc
from tests.api.conftest import QUEUE, closed_port_redis, open_channel, rpc_error, submit

TIMEOUT = 30.0
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def serving_status(channel: aio.Channel) -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    response = await stub.Check(health_pb2.HealthCheckRequest(service="taskflow.v1.TaskService"))
    return int(response.status)


async def wait_for_status(channel: aio.Channel, status: int) -> None:
    deadline = asyncio.get_running_loop().time() + TIMEOUT
    while await serving_status(channel) != status:
        assert asyncio.get_running_loop().time() < deadline, f"health never became {status}"
        await asyncio.sleep(0.05)


@pytest.fixture
async def redis_down_engine(settings: Settings) -> AsyncIterator[Engine]:
    await apply_migrations(settings.database_url)
    engine = await Engine.connect(closed_port_redis(settings))
    yield engine
    await engine.close()


@pytest.fixture
async def redis_down_server(redis_down_engine: Engine) -> AsyncIterator[ApiServer]:
    server = ApiServer(
        redis_down_engine, grpc_addr="127.0.0.1:0", http_addr="127.0.0.1:0", readiness_interval=0.1
    )
    await server.start()
    yield server
    await server.stop(grace=1)


async def test_without_redis_submissions_are_durable_and_redis_reads_unavailable(
    redis_down_server: ApiServer, settings: Settings
) -> None:
    async with open_channel(f"127.0.0.1:{redis_down_server.grpc_port}") as channel:
        stub = pb_grpc.TaskServiceStub(channel)
        task_id = await submit(stub)

        # Committed to PostgreSQL: readable, and dispatchable once Redis is back.
        task = await stub.GetTask(pb.GetTaskRequest(task_id=task_id))
        assert task.state == "queued"

        err = await rpc_error(stub.GetQueueStats(pb.GetQueueStatsRequest(queue=QUEUE.name)))
        assert err.code == grpc.StatusCode.UNAVAILABLE
        err = await rpc_error(stub.ListQueues(pb.ListQueuesRequest()))
        assert err.code == grpc.StatusCode.UNAVAILABLE
        assert await serving_status(channel) == NOT_SERVING

    async with aiohttp.ClientSession() as http:
        url = f"http://127.0.0.1:{redis_down_server.http_port}"
        async with http.get(f"{url}/readyz") as response:
            assert response.status == 503
            assert "not ready" in await response.text()
        async with http.get(f"{url}/healthz") as response:
            assert response.status == 200

    # The real Redis never saw the task: nothing was half-written there.
    real = aioredis.Redis.from_url(settings.redis_url)
    try:
        assert await real.keys("*") == []
    finally:
        await real.aclose()


@pytest.fixture
def own_postgres(pg_data_dir: Path) -> Any:
    server = EmbeddedPostgres(pg_data_dir, port=free_port(), fsync=False)
    server.start()
    yield server
    server.stop()


async def short_wait_engine(settings: Settings) -> Engine:
    """An engine whose PostgreSQL pool gives up waiting for a connection after 2 s."""
    pool: AsyncConnectionPool = AsyncConnectionPool(
        settings.database_url, min_size=1, max_size=4, timeout=2, open=False
    )
    await pool.open(wait=True, timeout=30)
    return Engine(
        settings, TaskStore(pool), Dispatcher(aioredis.Redis.from_url(settings.redis_url))
    )


async def test_postgres_outage_is_unavailable_then_recovers(
    own_postgres: EmbeddedPostgres, redis_url: str
) -> None:
    settings = Settings(redis_url=redis_url, database_url=own_postgres.url)
    await apply_migrations(settings.database_url)
    engine = await short_wait_engine(settings)
    server = ApiServer(
        engine, grpc_addr="127.0.0.1:0", http_addr="127.0.0.1:0", readiness_interval=0.1
    )
    await server.start()
    try:
        async with open_channel(f"127.0.0.1:{server.grpc_port}") as channel:
            stub = pb_grpc.TaskServiceStub(channel)
            task_id = await submit(stub)
            await wait_for_status(channel, SERVING)

            await asyncio.to_thread(own_postgres.stop)
            err = await rpc_error(stub.GetTask(pb.GetTaskRequest(task_id=task_id)))
            assert err.code == grpc.StatusCode.UNAVAILABLE
            err = await rpc_error(stub.SubmitTask(pb.SubmitTaskRequest(task=_spec())))
            assert err.code == grpc.StatusCode.UNAVAILABLE
            await wait_for_status(channel, NOT_SERVING)

            await asyncio.to_thread(own_postgres.start)
            await wait_for_status(channel, SERVING)
            task = await stub.GetTask(pb.GetTaskRequest(task_id=task_id))
            assert task.state == "queued"
    finally:
        await server.stop(grace=1)
        await engine.close()


def _spec() -> pb.TaskSpec:
    return pb.TaskSpec(queue=QUEUE.name, handler="work")
