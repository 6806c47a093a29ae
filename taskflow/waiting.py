"""Waiting on events from loops that also wake on a timer."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any


async def first_of(stop: asyncio.Event, wake: asyncio.Event, *, timeout: float) -> None:
    """Wait until ``stop`` or ``wake`` is set, at most ``timeout`` seconds."""
    waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wake.wait())]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await w


async def stopped_within(stop: asyncio.Event, seconds: float) -> bool:
    """Wait until ``stop`` is set, at most ``seconds``; whether it was set by then."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await stop.wait()
    return stop.is_set()


#: How long ``cancel_and_wait`` gives a cancelled task before cancelling it again.
RECANCEL_SECONDS = 0.1


async def cancel_and_wait(*tasks: asyncio.Future[Any]) -> None:
    """Cancel ``tasks`` and return once every one of them has ended.

    A cancellation can be lost inside a library: on Python 3.11 ``asyncio.wait_for`` returns
    the result instead of raising when the operation it awaits completes in the same turn of
    the loop as the cancel (psycopg_pool waits that way). A loop would then go on, and a lone
    ``task.cancel(); await task`` would wait for ever; here a task still running is cancelled
    again. The tasks' own errors are not raised (they are retrieved, so none is logged as
    never retrieved).
    """
    pending = {t for t in tasks if not t.done()}
    while pending:
        for t in pending:
            t.cancel()
        _, pending = await asyncio.wait(pending, timeout=RECANCEL_SECONDS)
    for t in tasks:
        if not t.cancelled():
            t.exception()
