"""Fixtures for API tests: a migrated engine, an API server on free ports, and gRPC stubs.

Test channels (``open_channel``) give every call that sets no deadline one of
``DEFAULT_DEADLINE`` seconds: a server that stalls fails that call in seconds (a unary call's
error names the method), not the whole test at pytest's timeout. Streams get the same default;
a watch that must stay open longer passes its own ``timeout``, as the watch tests do.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
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

#: Seconds a call of a test channel may take when it does not say.
DEFAULT_DEADLINE = 30.0


class _DefaultDeadline:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def details(self, details: aio.ClientCallDetails) -> aio.ClientCallDetails:
        """``details`` with the default deadline when they have none."""
        return details if details.timeout is not None else details._replace(timeout=self.seconds)


class _UnaryDeadline(_DefaultDeadline, aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(
        self, continuation: Callable[..., Any], details: aio.ClientCallDetails, request: Any
    ) -> Any:
        call = await continuation(self.details(details), request)
        if details.timeout is not None:
            return call
        try:
            await call
        except aio.AioRpcError as exc:
            if exc.code() is not grpc.StatusCode.DEADLINE_EXCEEDED:
                return call  # the caller sees the error as the server sent it
            raise aio.AioRpcError(
                exc.code(),
                exc.initial_metadata(),
                exc.trailing_metadata(),
                f"{details.method.decode()}: no answer within the tests' default deadline of "
                f"{self.seconds:g}s (a stalled server?)",
                exc.debug_error_string(),
            ) from None
        return call


class _StreamDeadline(_DefaultDeadline, aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(
        self, continuation: Callable[..., Any], details: aio.ClientCallDetails, request: Any
    ) -> Any:
        return await continuation(self.details(details), request)


def open_channel(target: str, default_deadline: float = DEFAULT_DEADLINE) -> aio.Channel:
    """An insecure channel to ``target`` whose calls have ``default_deadline`` unless they set
    a timeout of their own."""
    interceptors = [_UnaryDeadline(default_deadline), _StreamDeadline(default_deadline)]
    return aio.insecure_channel(target, interceptors=interceptors)


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
    async with open_channel(f"127.0.0.1:{api_server.grpc_port}") as ch:
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
