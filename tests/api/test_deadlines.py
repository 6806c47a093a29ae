"""The API tests' channels: a call that sets no deadline gets one, so a stalled server fails
the call in seconds and names the method instead of hanging until pytest's timeout."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from taskflow.api import ApiServer
from taskflow.engine import Engine
from taskflow_client.v1 import tasks_pb2 as pb
from taskflow_client.v1 import tasks_pb2_grpc as pb_grpc
from tests.api.conftest import open_channel, rpc_error, submit

SHORT = 0.5


@pytest.fixture
async def short_stub(api_server: ApiServer) -> AsyncIterator[Any]:
    """A stub on a channel whose default deadline is ``SHORT`` seconds."""
    async with open_channel(f"127.0.0.1:{api_server.grpc_port}", default_deadline=SHORT) as ch:
        yield pb_grpc.TaskServiceStub(ch)


@pytest.fixture
def stalled_list_queues(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    never = asyncio.Event()

    async def stalled(namespace: str | None) -> list[Any]:
        await never.wait()
        return []

    monkeypatch.setattr(engine, "list_queues", stalled)


@pytest.mark.usefixtures("stalled_list_queues")
async def test_a_stalled_call_fails_at_the_default_deadline_naming_its_method(
    short_stub: Any,
) -> None:
    err = await rpc_error(short_stub.ListQueues(pb.ListQueuesRequest()))
    assert err.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert err.details.startswith("/taskflow.v1.TaskService/ListQueues: no answer within"), err


@pytest.mark.usefixtures("stalled_list_queues")
async def test_a_call_keeps_its_own_timeout(short_stub: Any) -> None:
    started = asyncio.get_running_loop().time()
    err = await rpc_error(short_stub.ListQueues(pb.ListQueuesRequest(), timeout=SHORT * 4))
    assert err.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "no answer within" not in err.details
    assert asyncio.get_running_loop().time() - started >= SHORT * 3  # not the default's


async def test_a_watch_without_a_timeout_ends_at_the_default_deadline(short_stub: Any) -> None:
    task_id = await submit(short_stub)
    stream = short_stub.WatchTask(pb.WatchTaskRequest(task_id=task_id))
    assert (await stream.read()).state == "queued"
    err = await rpc_error(stream.read())
    assert err.code == grpc.StatusCode.DEADLINE_EXCEEDED
