"""Housekeeping (``taskflow.housekeeping.Housekeeper``) while this operator leads."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from taskflow.housekeeping import Housekeeper
from taskflow.scheduling import Scheduler
from taskflow_operator.context import OperatorContext

log = logging.getLogger("taskflow.operator.housekeeping")


async def housekeeping_loop(ctx: OperatorContext, stop: asyncio.Event) -> None:
    """Run the sweeper and the cron scheduler exactly while ``ctx.leadership`` is active,
    until ``stop``."""
    keeper = Housekeeper(ctx.engine)
    lead = ctx.leadership
    while not stop.is_set():
        if not lead.active:
            await _wait_change(lead.changed, stop)
            continue
        log.info("housekeeping started (this operator leads)")
        sweeping = asyncio.Event()
        runner = asyncio.gather(keeper.run(sweeping), Scheduler(ctx.engine).run(sweeping))
        while lead.active and not stop.is_set():
            await _wait_change(lead.changed, stop)
        sweeping.set()
        await runner
        log.info("housekeeping stopped")


async def _wait_change(changed: asyncio.Event, stop: asyncio.Event) -> None:
    changed.clear()
    waiters = [asyncio.ensure_future(changed.wait()), asyncio.ensure_future(stop.wait())]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await w
