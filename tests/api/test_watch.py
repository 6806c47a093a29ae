"""WatchTask streams and the hub that serves every watch with one query per tick."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import grpc
import pytest

from taskflow.api.watch import WatchHub
from taskflow.errors import NotFound, Unavailable
from taskflow.models import RetryPolicy, TaskRecord, TaskState, utcnow
from taskflow_client.v1 import tasks_pb2 as pb
from tests.api.conftest import EOF, Dispatch, rpc_error, submit

TIMEOUT = 20.0


async def test_watch_streams_from_queued_to_succeeded(grpc_stub: Any, dispatch: Dispatch) -> None:
    task_id = await submit(grpc_stub)
    stream = grpc_stub.WatchTask(pb.WatchTaskRequest(task_id=task_id), timeout=TIMEOUT)
    first = await stream.read()
    assert (first.id, first.state) == (task_id, "queued")

    await dispatch.start(task_id)
    running = await stream.read()
    assert running.state == "running"

    await dispatch.finish(task_id, TaskState.SUCCEEDED, result=42)
    done = await stream.read()
    assert (done.state, done.result_json) == ("succeeded", "42")
    assert await stream.read() == EOF
    assert await stream.code() == grpc.StatusCode.OK


async def test_watch_of_a_finished_task_sends_it_once(grpc_stub: Any) -> None:
    task_id = await submit(grpc_stub)
    await grpc_stub.CancelTask(pb.CancelTaskRequest(task_id=task_id))
    states = [t.state async for t in grpc_stub.WatchTask(pb.WatchTaskRequest(task_id=task_id))]
    assert states == ["cancelled"]


async def test_watch_sees_a_cancellation(grpc_stub: Any) -> None:
    task_id = await submit(grpc_stub)
    stream = grpc_stub.WatchTask(pb.WatchTaskRequest(task_id=task_id), timeout=TIMEOUT)
    assert (await stream.read()).state == "queued"
    await grpc_stub.CancelTask(pb.CancelTaskRequest(task_id=task_id))
    assert (await stream.read()).state == "cancelled"
    assert await stream.read() == EOF


async def test_watch_errors(grpc_stub: Any) -> None:
    err = await rpc_error(_drain(grpc_stub.WatchTask(pb.WatchTaskRequest(task_id="bad"))))
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT
    err = await rpc_error(
        _drain(
            grpc_stub.WatchTask(pb.WatchTaskRequest(task_id="0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"))
        )
    )
    assert err.code == grpc.StatusCode.NOT_FOUND


async def _drain(stream: Any) -> list[Any]:
    return [item async for item in stream]


async def test_disconnected_watchers_are_forgotten(grpc_stub: Any, api_server: Any) -> None:
    task_id = await submit(grpc_stub)
    stream = grpc_stub.WatchTask(pb.WatchTaskRequest(task_id=task_id), timeout=TIMEOUT)
    await stream.read()
    await _until(lambda: api_server.hub.watched == 1)
    stream.cancel()
    await _until(lambda: api_server.hub.watched == 0)


async def _until(check: Any, timeout: float = TIMEOUT) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


# -- the hub on its own, with PostgreSQL replaced by a table in memory --------------------------


class FakeTable:
    """Task rows by id; counts the queries the hub makes."""

    def __init__(self, tasks: Sequence[TaskRecord]) -> None:
        self.rows = {t.id: t for t in tasks}
        self.queries: list[list[str]] = []
        self.fail = False
        self.queried = asyncio.Event()

    async def get_many(self, ids: Sequence[str]) -> list[TaskRecord]:
        self.queries.append(list(ids))
        self.queried.set()
        if self.fail:
            raise OSError("connection refused")
        return [self.rows[i] for i in ids if i in self.rows]

    def change(self, task_id: str, state: TaskState) -> None:
        self.rows[task_id] = replace(self.rows[task_id], state=state, updated_at=utcnow())


def record(i: int) -> TaskRecord:
    now = utcnow()
    return TaskRecord(
        id=f"00000000-0000-7000-8000-{i:012d}",
        namespace="default",
        queue="jobs",
        handler="h",
        state=TaskState.QUEUED,
        payload_json="null",
        priority=0,
        attempts=0,
        failures=0,
        max_retries=3,
        timeout_seconds=0,
        retry=RetryPolicy(),
        idempotency_key=None,
        concurrency_key=None,
        concurrency_limit=None,
        labels={},
        created_at=now,
        run_at=now,
        started_at=None,
        finished_at=None,
        updated_at=now,
    )


async def test_hub_serves_many_watchers_with_one_query_per_tick() -> None:
    tasks = [record(i) for i in range(300)]
    table = FakeTable(tasks)
    hub = WatchHub(table.get_many)
    hub.start()
    try:
        async with contextlib.AsyncExitStack() as stack:
            watchers = [await stack.enter_async_context(hub.subscribe(t)) for t in tasks]
            table.change(tasks[7].id, TaskState.RUNNING)
            got = await asyncio.wait_for(watchers[7].next(), TIMEOUT)
            assert got.state == TaskState.RUNNING
            # Every query asked for every watched task at once: one query per tick.
            everything = sorted(t.id for t in tasks)
            assert table.queries and all(sorted(q) == everything for q in table.queries)
            assert not any(w.pending for i, w in enumerate(watchers) if i != 7)
    finally:
        await hub.close()


async def test_hub_idles_without_watchers() -> None:
    tasks = [record(1)]
    table = FakeTable(tasks)
    hub = WatchHub(table.get_many)
    hub.start()
    try:
        async with hub.subscribe(tasks[0]):
            await asyncio.wait_for(table.queried.wait(), TIMEOUT)
        await _until(lambda: hub.watched == 0)
        table.queried.clear()
        count = len(table.queries)
        # Once the last watcher left, a new subscription is what starts the next poll.
        async with hub.subscribe(tasks[0]):
            await asyncio.wait_for(table.queried.wait(), TIMEOUT)
        assert len(table.queries) >= count + 1
    finally:
        await hub.close()


async def test_hub_reports_deleted_tasks_and_lasting_outages() -> None:
    tasks = [record(1), record(2)]
    table = FakeTable(tasks)
    hub = WatchHub(table.get_many, unavailable_after=0.2)
    hub.start()
    try:
        async with hub.subscribe(tasks[0]) as gone:
            del table.rows[tasks[0].id]
            with pytest.raises(NotFound):
                await asyncio.wait_for(gone.next(), TIMEOUT)
        async with hub.subscribe(tasks[1]) as waiting:
            table.fail = True
            with pytest.raises(Unavailable):
                await asyncio.wait_for(waiting.next(), TIMEOUT)
    finally:
        await hub.close()


async def test_closing_the_hub_ends_open_watches() -> None:
    tasks = [record(1)]
    hub = WatchHub(FakeTable(tasks).get_many)
    hub.start()
    async with hub.subscribe(tasks[0]) as watcher:
        await hub.close()
        with pytest.raises(Unavailable):
            await asyncio.wait_for(watcher.next(), TIMEOUT)


async def test_stopping_the_server_ends_watches_as_unavailable(
    grpc_stub: Any, api_server: Any
) -> None:
    task_id = await submit(grpc_stub)
    stream = grpc_stub.WatchTask(pb.WatchTaskRequest(task_id=task_id), timeout=TIMEOUT)
    assert (await stream.read()).state == "queued"
    await api_server.stop(grace=TIMEOUT)
    err = await rpc_error(stream.read())
    assert err.code == grpc.StatusCode.UNAVAILABLE
