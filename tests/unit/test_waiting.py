"""Waiting on a stop event with a bound on the wait."""

from __future__ import annotations

import asyncio
import time

from taskflow.waiting import stopped_within

LONG = 30.0  # far longer than any of these waits may take


async def test_a_stop_set_before_the_wait_returns_true_at_once() -> None:
    stop = asyncio.Event()
    stop.set()
    started = time.monotonic()
    assert await stopped_within(stop, LONG) is True
    assert time.monotonic() - started < LONG / 2


async def test_a_stop_set_by_another_task_ends_the_wait() -> None:
    stop = asyncio.Event()
    waiting = asyncio.create_task(stopped_within(stop, LONG))
    await asyncio.sleep(0)  # the waiter is now parked on the event
    assert not waiting.done()
    stop.set()
    assert await asyncio.wait_for(waiting, LONG / 2) is True


async def test_a_stop_never_set_returns_false_after_the_time() -> None:
    stop = asyncio.Event()
    started = time.monotonic()
    assert await stopped_within(stop, 0.01) is False
    assert time.monotonic() - started >= 0.005  # it waited (timers may fire a hair early)
    assert not stop.is_set()


async def test_a_zero_wait_reports_the_event_as_it_is() -> None:
    stop = asyncio.Event()
    assert await stopped_within(stop, 0) is False
    stop.set()
    assert await stopped_within(stop, 0) is True
