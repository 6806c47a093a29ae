"""Fixtures for the dashboard: an API server (which serves it) and a worker running the
example handlers, both on the test's Redis and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from taskflow.api import ApiServer
from taskflow.config import Settings
from taskflow.engine import Engine
from taskflow.keys import QueueRef
from taskflow_worker.examples import router
from taskflow_worker.runtime import Worker, WorkerConfig

QUEUE = QueueRef("default", "jobs")


@pytest.fixture
def dashboard_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Queue samples every 0.1 s, so the charts' history fills within a test."""
    monkeypatch.setenv("TASKFLOW_DASHBOARD_SAMPLE_SECONDS", "0.1")
    monkeypatch.delenv("TASKFLOW_DASHBOARD_ACTIONS", raising=False)


@pytest.fixture
async def api_server(engine: Engine, dashboard_env: None) -> AsyncIterator[ApiServer]:
    server = ApiServer(engine, grpc_addr="127.0.0.1:0", http_addr="127.0.0.1:0")
    await server.start()
    yield server
    await server.stop(grace=1)


@pytest.fixture
async def worker(settings: Settings, api_server: ApiServer) -> AsyncIterator[Worker]:
    stop = asyncio.Event()
    w = Worker(router, settings, WorkerConfig(queues=[QUEUE], concurrency=4))
    task = asyncio.create_task(w.run(stop))
    yield w
    stop.set()
    await task


Get = Callable[..., Awaitable[tuple[int, Any]]]


@pytest.fixture
async def http(api_server: ApiServer) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(f"http://127.0.0.1:{api_server.http_port}") as session:
        yield session


@pytest.fixture
def get(http: aiohttp.ClientSession) -> Get:
    """``await get(path, **query)``: the status and the decoded JSON body."""

    async def call(path: str, headers: dict[str, str] | None = None, **query: Any) -> Any:
        async with http.get(path, params=query or None, headers=headers) as response:
            return response.status, await response.json()

    return call


async def until(check: Callable[[], Awaitable[Any]], deadline: float = 30.0) -> Any:
    """Poll ``check`` until it returns something truthy (fails after ``deadline`` seconds)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while True:
        value = await check()
        if value:
            return value
        assert loop.time() < end, "condition not met in time"
        await asyncio.sleep(0.05)
