"""Background loops stop even when a library loses their cancellation.

On Python 3.11 ``asyncio.wait_for`` returns the awaited result instead of raising when that
result arrives in the same turn of the loop as the cancel (psycopg_pool waits that way). A
loop around such a wait survives a single ``cancel()``.
"""

from __future__ import annotations

import asyncio
import sys

import pytest
from grpc_health.v1 import health_pb2
from grpc_health.v1.health import aio as health_aio  # type: ignore[attr-defined]

from taskflow.api.health import TASK_SERVICE, ReadinessMonitor
from taskflow.waiting import cancel_and_wait


class Gates:
    """Waits that lose a cancel: each ``wait`` is an ``asyncio.wait_for`` on a new gate."""

    def __init__(self) -> None:
        self.armed = False
        self.current: asyncio.Future[None] | None = None
        self.waiting = asyncio.Event()

    async def wait(self) -> None:
        if not self.armed:
            return
        gate = self.current = asyncio.get_running_loop().create_future()
        self.waiting.set()
        await asyncio.wait_for(gate, 60)

    async def loop_forever(self) -> None:
        self.armed = True
        while True:
            await self.wait()

    async def open_current(self) -> None:
        """Wait until a wait is pending, then resolve its gate (the caller cancels next)."""
        await self.waiting.wait()
        self.waiting.clear()
        assert self.current is not None
        self.current.set_result(None)


async def test_cancel_and_wait_ends_a_loop_that_lost_its_cancellation() -> None:
    gates = Gates()
    task = asyncio.create_task(gates.loop_forever())
    await gates.open_current()
    async with asyncio.timeout(10):
        await cancel_and_wait(task)
    assert task.cancelled()


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="wait_for keeps cancellations on 3.12+")
async def test_a_single_cancel_is_lost_here() -> None:
    """The premise of the test above: one cancel does not end the loop."""
    gates = Gates()
    task = asyncio.create_task(gates.loop_forever())
    await gates.open_current()
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=0.5)
    assert not done
    await cancel_and_wait(task)


async def test_cancel_and_wait_retrieves_errors_and_skips_finished_tasks() -> None:
    async def fails() -> None:
        raise RuntimeError("boom")

    failed = asyncio.create_task(fails())
    await asyncio.wait({failed})
    sleeper = asyncio.create_task(asyncio.sleep(30))
    async with asyncio.timeout(10):
        await cancel_and_wait(failed, sleeper)
    assert sleeper.cancelled()
    assert isinstance(failed.exception(), RuntimeError)


async def test_readiness_monitor_stops_when_its_check_loses_the_cancellation() -> None:
    gates = Gates()
    servicer = health_aio.HealthServicer()
    # The check's own timeout is longer than the test's bound: only a second cancel ends it.
    monitor = ReadinessMonitor(gates.wait, servicer, interval=0.01, timeout=60)
    await monitor.start()
    gates.armed = True
    await gates.open_current()
    # In the same turn as the gate opens (no timeout around it: a stop that swallowed the
    # caller's own cancellation would hide the hang).
    stopping = asyncio.ensure_future(monitor.stop())
    done, _ = await asyncio.wait({stopping}, timeout=10)
    if not done:
        gates.armed = False
        task = monitor._task
        assert task is not None
        await cancel_and_wait(task, stopping)
    assert done, "the monitor did not stop"
    response = await servicer.Check(health_pb2.HealthCheckRequest(service=TASK_SERVICE), None)
    assert response.status == health_pb2.HealthCheckResponse.NOT_SERVING
