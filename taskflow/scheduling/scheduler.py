"""The scheduler: fires the due tick of every schedule once, through the engine.

Each pass reads the schedules whose next tick is due at the clock's ``now`` and, for each:

1. takes the latest tick at or before ``now``: ticks missed while no scheduler ran (or while
   the schedule was suspended) are coalesced into that one fire;
2. skips it when it is later than ``starting_deadline_seconds``, or when the policy is
   ``Forbid`` and the task of the previous fire has not finished; with ``Replace`` it cancels
   that task (``Engine.cancel``) first;
3. writes the intent to fire the tick (``pending_tick``, guarded by ``last_tick < tick``),
   submits the task with the idempotency key ``schedule:<id>:<tick>`` (``Engine.submit``),
   then records the fire (guarded by ``pending_tick = tick``).

A scheduler killed between 3's writes leaves the intent; the next pass of any scheduler
finishes it, and the key makes the submission return the task already created, if any. Two
schedulers racing on one tick submit one task and count one fire: the losers' guarded
updates change nothing.

Between passes it sleeps until the next due tick, at most ``recheck`` seconds, so that new
and changed schedules are picked up; ``wake()`` cuts the sleep short.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime

from pydantic import ValidationError

from taskflow.engine import UNAVAILABLE_ERRORS, Engine
from taskflow.errors import InvalidArgument, NotFound, PayloadTooLarge, Unavailable
from taskflow.models import TaskRecord
from taskflow.scheduling.clock import SYSTEM_CLOCK, Clock
from taskflow.scheduling.models import (
    TARGET_KINDS,
    ConcurrencyPolicy,
    ScheduleRecord,
    tick_text,
)
from taskflow.scheduling.store import ScheduleStore

log = logging.getLogger("taskflow.scheduler")

#: A pass stops at these and is tried again after ``recheck``: the stores are away.
STORE_AWAY: tuple[type[BaseException], ...] = (*UNAVAILABLE_ERRORS, Unavailable)


@dataclass
class PassReport:
    """What one pass did."""

    fired: int = 0
    skipped: int = 0
    replaced: int = 0
    #: Schedules looked at whose tick another scheduler handled first.
    lost_races: int = 0

    @property
    def acted(self) -> bool:
        return bool(self.fired or self.skipped or self.replaced)


class Scheduler:
    def __init__(
        self,
        engine: Engine,
        *,
        clock: Clock = SYSTEM_CLOCK,
        recheck: float = 1.0,
        batch: int = 200,
    ) -> None:
        self.engine = engine
        self.store = ScheduleStore(engine.store.pool)
        self.clock = clock
        self.recheck = recheck
        self.batch = batch
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Look at the schedules now rather than at the end of the current sleep."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Pass after pass until ``stop`` is set."""
        log.info("scheduler started")
        while not stop.is_set():
            self._wake.clear()
            wait = self.recheck
            try:
                report = await self.run_once()
                wait = 0.0 if report.fired + report.skipped >= self.batch else await self._idle()
            except STORE_AWAY as exc:
                log.warning("scheduler pass skipped: store unavailable: %s", exc)
            except Exception:
                log.exception("scheduler pass failed")
            if wait > 0:
                await _first(stop, self._wake, timeout=wait)
        log.info("scheduler stopped")

    async def _idle(self) -> float:
        """Seconds until the next due tick, at most ``recheck``."""
        due = await self.store.next_due(TARGET_KINDS)
        if due is None:
            return self.recheck
        return max(0.0, min(self.recheck, (due - self.clock.now()).total_seconds()))

    async def run_once(self) -> PassReport:
        """One pass over the schedules due now."""
        report = PassReport()
        now = self.clock.now()
        for record in await self.store.due(now, TARGET_KINDS, self.batch):
            try:
                await self._handle(record, now, report)
            except STORE_AWAY:
                raise
            except Exception:
                log.exception("schedule %s/%s could not be handled", record.namespace, record.name)
        return report

    async def _handle(self, record: ScheduleRecord, now: datetime, report: PassReport) -> None:
        if record.pending_tick is not None:
            await self._fire(record, record.pending_tick, report)
            return
        spec = record.spec
        timing = spec.timing
        tick = timing.latest_at_or_before(now)
        if record.next_fire_at is None or tick < record.next_fire_at:
            return  # read as due by a clock ahead of this one
        next_at = timing.next_after(tick)
        late = (now - tick).total_seconds()
        deadline = spec.starting_deadline_seconds
        if deadline is not None and late > deadline:
            reason = f"missed: {late:.0f}s late, more than starting_deadline_seconds ({deadline})"
            await self._skip(record, tick, reason, next_at, report)
            return
        previous = await self._unfinished(record)
        if previous is not None and spec.concurrency_policy == ConcurrencyPolicy.FORBID:
            reason = f"Forbid: the previous fire's task {previous.id} is still {previous.state}"
            await self._skip(record, tick, reason, next_at, report)
            return
        if previous is not None and spec.concurrency_policy == ConcurrencyPolicy.REPLACE:
            with contextlib.suppress(NotFound):  # expired meanwhile: nothing left to cancel
                await self.engine.cancel(previous.id)
            report.replaced += 1
            log.info(
                "schedule %s: cancelled %s, the unfinished task of its previous fire (Replace)",
                _name(record),
                previous.id,
                extra={"schedule": _name(record), "task_id": previous.id},
            )
        if not await self.store.claim(record.id, record.revision, tick, record.last_task_id):
            report.lost_races += 1
            return
        await self._fire(record, tick, report)

    async def _unfinished(self, record: ScheduleRecord) -> TaskRecord | None:
        """The previous fire's task, when the policy cares and it has not finished."""
        if record.spec.concurrency_policy == ConcurrencyPolicy.ALLOW or not record.last_task_id:
            return None
        try:
            task = await self.engine.get(record.last_task_id)
        except NotFound:
            return None  # expired after it finished
        return None if task.done else task

    async def _fire(self, record: ScheduleRecord, tick: datetime, report: PassReport) -> None:
        """Submit the task of the claimed ``tick`` and record it (idempotent)."""
        next_at = record.spec.timing.next_after(tick)
        try:
            submission = record.spec.submission(record.id, tick)
            self.engine.check_payload(submission, "payload")
            (result,) = await self.engine.submit([submission])
        except (InvalidArgument, PayloadTooLarge, ValidationError) as exc:
            # The spec was valid when stored; if it no longer is, retrying cannot help.
            reason = f"the task could not be submitted: {exc}"
            if await self.store.record_skip(record.id, tick, reason, next_at):
                report.skipped += 1
                log.error(
                    "schedule %s: tick %s skipped: %s",
                    _name(record),
                    tick_text(tick),
                    reason,
                    extra={"schedule": _name(record), "tick": tick_text(tick)},
                )
            return
        now = self.clock.now()
        if await self.store.record_fire(record.id, tick, result.task_id, now, next_at):
            report.fired += 1
            log.info(
                "schedule %s: tick %s fired task %s",
                _name(record),
                tick_text(tick),
                result.task_id,
                extra={
                    "schedule": _name(record),
                    "tick": tick_text(tick),
                    "task_id": result.task_id,
                    "late_seconds": round((now - tick).total_seconds(), 3),
                },
            )
        else:
            report.lost_races += 1

    async def _skip(
        self,
        record: ScheduleRecord,
        tick: datetime,
        reason: str,
        next_at: datetime,
        report: PassReport,
    ) -> None:
        if await self.store.record_skip(record.id, tick, reason, next_at, revision=record.revision):
            report.skipped += 1
            log.info(
                "schedule %s: tick %s skipped: %s",
                _name(record),
                tick_text(tick),
                reason,
                extra={"schedule": _name(record), "tick": tick_text(tick), "reason": reason},
            )
        else:
            report.lost_races += 1


def _name(record: ScheduleRecord) -> str:
    return f"{record.namespace}/{record.name}"


async def _first(stop: asyncio.Event, wake: asyncio.Event, *, timeout: float) -> None:
    """Wait until ``stop`` or ``wake`` is set, at most ``timeout`` seconds."""
    waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wake.wait())]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await w
