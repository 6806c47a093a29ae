"""Waiting on events from loops that also wake on a timer."""

from __future__ import annotations

import asyncio
import contextlib


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
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    return stop.is_set()
