"""What only AsyncClient has: coroutines sharing one event loop and one lazily opened channel.

Everything both clients do is checked against both in ``test_clients.py``.
"""

from __future__ import annotations

import asyncio

from taskflow_client import AsyncClient, TaskState

from .fake_server import FakeServer


async def _until_calls(fake: FakeServer, method: str, count: int) -> None:
    await asyncio.to_thread(fake.service.wait_for_calls, method, count)


async def test_waits_run_concurrently_in_one_loop(fake: FakeServer, aclient: AsyncClient) -> None:
    ids = [await aclient.submit("q", "slow") for _ in range(3)]
    waiting = asyncio.gather(*(aclient.wait(i, timeout=10) for i in ids))
    await _until_calls(fake, "WatchTask", 3)
    for task_id in ids:
        fake.service.set_state(task_id, "succeeded", result=task_id)
    tasks = await asyncio.wait_for(waiting, timeout=10)
    assert [(t.state, t.result) for t in tasks] == [(TaskState.SUCCEEDED, i) for i in ids]


async def test_watch_is_an_async_iterator(fake: FakeServer, aclient: AsyncClient) -> None:
    task_id = await aclient.submit("q", "slow")
    states = []
    async for snapshot in aclient.watch(task_id):
        states.append(snapshot.state)
        if snapshot.state == "queued":
            fake.service.set_state(task_id, "running")
        elif snapshot.state == "running":
            fake.service.set_state(task_id, "succeeded")
    assert states == ["queued", "running", "succeeded"]


async def test_close_is_idempotent_and_before_first_call(fake: FakeServer) -> None:
    client = AsyncClient(fake.target)
    await client.close()
    async with AsyncClient(fake.target) as client:
        await client.queues()
    await client.close()
    assert len(fake.service.calls_of("ListQueues")) == 1


def test_construction_needs_no_event_loop(fake: FakeServer) -> None:
    client = AsyncClient(fake.target)
    assert (client.target, client.namespace) == (fake.target, "default")
    assert asyncio.run(_queues_then_close(client)) == []


async def _queues_then_close(client: AsyncClient) -> list[object]:
    try:
        return list(await client.queues())
    finally:
        await client.close()
