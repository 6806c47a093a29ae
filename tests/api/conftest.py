"""Fixtures for API tests: a migrated engine, an API server on free ports, and gRPC stubs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

import grpc
import pytest
from grpc import aio

from taskflow.api import ApiServer
from taskflow.config import Settings
from taskflow.engine import Engine
from taskflow.keys import QueueRef
from taskflow.models import ClaimedTask, Outcome, TaskState, utcnow
from taskflow.worker_session import AttemptEnd, LeaseEvents, WorkerSession
from taskflow_client.v1 import tasks_pb2 as pb
from taskflow_client.v1 import tasks_pb2_grpc as pb_grpc

QUEUE = QueueRef("default", "jobs")
WORKER = "test-worker"

#: Small enough that tests can exceed it cheaply.
MAX_PAYLOAD = 64 * 1024


@pytest.fixture
def settings(redis_url: str, database_url: str) -> Settings:
    return Settings(redis_url=redis_url, database_url=database_url, max_payload_bytes=MAX_PAYLOAD)


@pytest.fixture
async def api_server(engine: Engine) -> AsyncIterator[ApiServer]:
    server = ApiServer(
        engine, grpc_addr="127.0.0.1:0", http_addr="127.0.0.1:0", readiness_interval=0.1
    )
    await server.start()
    yield server
    await server.stop(grace=1)


@pytest.fixture
async def channel(api_server: ApiServer) -> AsyncIterator[aio.Channel]:
    async with aio.insecure_channel(f"127.0.0.1:{api_server.grpc_port}") as ch:
        yield ch


@pytest.fixture
def grpc_stub(channel: aio.Channel) -> Any:
    return pb_grpc.TaskServiceStub(channel)


def spec(handler: str = "work", payload_json: str = "", **fields: Any) -> pb.TaskSpec:
    return pb.TaskSpec(queue=QUEUE.name, handler=handler, payload_json=payload_json, **fields)


async def submit(stub: Any, **fields: Any) -> str:
    response = await stub.SubmitTask(pb.SubmitTaskRequest(task=spec(**fields)))
    return str(response.task_id)


#: What ``read()`` of a finished response stream returns.
EOF: Any = aio.EOF  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Failure:
    code: grpc.StatusCode
    details: str


async def rpc_error(call: Any) -> Failure:
    """Await ``call`` and return the status it must fail with."""
    with pytest.raises(aio.AioRpcError) as info:
        await call
    return Failure(info.value.code(), info.value.details() or "")


class Dispatch:
    """Moves tasks through their life the way a worker does, through a ``WorkerSession``."""

    def __init__(self, engine: Engine, queue: QueueRef = QUEUE) -> None:
        self.engine = engine
        self.queue = queue
        self.session = WorkerSession(
            engine.settings,
            WORKER,
            engine.store,
            engine.dispatcher,
            engine.dispatcher,
            LeaseEvents(cancel=lambda _: None, lost=lambda _: None),
        )
        self._claims: dict[str, ClaimedTask] = {}

    async def start(self, task_id: str) -> None:
        """Claim ``task_id`` (it must be the next ready task) and record it as running."""
        tasks, _ = await self.session.claim(self.queue, 1)
        assert [t.id for t in tasks] == [task_id]
        self._claims[task_id] = tasks[0]
        await self.session.flushed()

    async def finish(
        self, task_id: str, state: TaskState, *, result: Any = None, error: str = ""
    ) -> None:
        """End the running attempt of ``task_id`` in a terminal ``state``."""
        claim = self._claims.pop(task_id)
        if state is TaskState.SUCCEEDED:
            end = AttemptEnd(Outcome.SUCCEEDED, result=result)
        else:
            end = AttemptEnd(Outcome.FAILED, error=error or None, retryable=False)
        done = await self.session.finish(claim, end, max_retries=0)
        assert done.recorded and done.redis, done

    async def dead_letter(self, task_id: str, error: str = "boom") -> None:
        await self.start(task_id)
        await self.finish(task_id, TaskState.FAILED, error=error)

    async def close(self) -> None:
        await self.session.close(5.0)


@pytest.fixture
async def dispatch(engine: Engine) -> AsyncIterator[Dispatch]:
    d = Dispatch(engine)
    yield d
    await d.close()


def closed_port_redis(settings: Settings) -> Settings:
    """``settings`` with Redis pointing at a port nothing listens on."""
    from taskflow.embedded import free_port

    return replace(settings, redis_url=f"redis://127.0.0.1:{free_port()}/0")


def later(seconds: float) -> Any:
    return utcnow() + timedelta(seconds=seconds)
