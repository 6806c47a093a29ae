"""The scheduler: fires the due tick of every schedule once, through the engine.

Each pass reads the schedules whose next tick is due at the clock's ``now`` and, for each:

1. takes the latest tick at or before ``now``: ticks missed while no scheduler ran (or while
   the schedule was suspended) are coalesced into that one fire;
2. skips it when it is later than ``starting_deadline_seconds``, or when the policy is
   ``Forbid`` and the task of the previous fire has not finished; with ``Replace`` it cancels
   that task (``Engine.cancel``) first;
3. writes the intent to fire the tick (``pending_tick``, guarded by ``last_tick < tick``),
   submits the task with the idempotency key ``schedule:<id>:<tick>`` (``Engine.submit``),
   then records the fire (guarded by ``pending_tick = tick``). The fires of one pass share
   each of these three statements.

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

import psycopg
from pydantic import ValidationError

from taskflow.engine import Engine
from taskflow.errors import (
    STORE_ERRORS,
    InvalidArgument,
    NotFound,
    PayloadTooLarge,
    Unavailable,
)
from taskflow.models import TaskSubmission
from taskflow.scheduling.clock import SYSTEM_CLOCK, Clock
from taskflow.scheduling.models import (
    TARGET_KINDS,
    ConcurrencyPolicy,
    ScheduleRecord,
    tick_text,
)
from taskflow.scheduling.store import Claim, Fire, ScheduleStore
from taskflow.waiting import first_of
from taskflow.workflows.service import DagService

log = logging.getLogger("taskflow.scheduler")

#: A pass stops at these and is tried again after ``recheck``: the stores are away.
STORE_AWAY: tuple[type[BaseException], ...] = (*STORE_ERRORS, Unavailable)


#: Why a tick's task may be refused for good (not for now): by the model, the engine, or
#: PostgreSQL refusing a value.
UNSUBMITTABLE: tuple[type[Exception], ...] = (
    InvalidArgument,
    PayloadTooLarge,
    ValidationError,
    psycopg.DataError,
)


@dataclass(frozen=True)
class _Decision:
    """A tick to fire: claimed already (``pending_tick``) or to be claimed."""

    record: ScheduleRecord
    tick: datetime
    needs_claim: bool


@dataclass
class PassReport:
    """What one pass did."""

    #: The clock's time the pass acted at.
    now: datetime
    looked_at: int = 0
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
        concurrency: int = 8,
    ) -> None:
        self.engine = engine
        self.dags = DagService(engine)
        self.store = ScheduleStore(engine.store.pool)
        self.clock = clock
        self.recheck = recheck
        self.batch = batch
        #: Schedules decided on at once (reading a previous fire's task, recording a skip):
        #: each holds a PostgreSQL connection meanwhile, so at most half the pool.
        self.concurrency = max(1, min(concurrency, engine.settings.db_pool_size // 2))
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
                wait = await self.pause_after(report)
            except STORE_AWAY as exc:
                log.warning("scheduler pass skipped: store unavailable: %s", exc)
            except Exception:
                log.exception("scheduler pass failed")
            if wait > 0:
                await first_of(stop, self._wake, timeout=wait)
        log.info("scheduler stopped")

    async def pause_after(self, report: PassReport) -> float:
        """Seconds to sleep after the pass of ``report``: until the next due tick, at most
        ``recheck``; none when the pass left due schedules for the next one; ``recheck`` when
        what is due made no progress (it failed), so that it is not retried in a busy loop."""
        if report.looked_at >= self.batch:
            return 0.0
        due = await self.store.next_due(TARGET_KINDS)
        if due is None:
            return self.recheck
        if due <= report.now and not (report.acted or report.lost_races):
            return self.recheck
        return max(0.0, min(self.recheck, (due - self.clock.now()).total_seconds()))

    async def run_once(self) -> PassReport:
        """One pass over the schedules due now: each one's tick is decided on (fire or skip),
        then the fires are claimed, submitted and recorded in one statement each."""
        now = self.clock.now()
        report = PassReport(now)
        slots = asyncio.Semaphore(self.concurrency)

        async def decide(record: ScheduleRecord) -> _Decision | None:
            async with slots:
                try:
                    return await self._decide(record, now, report)
                except STORE_AWAY:
                    raise
                except Exception:
                    log.exception("schedule %s could not be handled", _name(record))
                    return None

        due = await self.store.due(now, TARGET_KINDS, self.batch)
        report.looked_at = len(due)
        outcomes = await asyncio.gather(*(decide(r) for r in due), return_exceptions=True)
        decisions: list[_Decision] = []
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
            if outcome is not None:
                decisions.append(outcome)
        fresh = [d for d in decisions if d.needs_claim]
        claimed = await self.store.claim(
            [Claim(d.record.id, d.record.revision, d.tick, d.record.last_task_id) for d in fresh]
        )
        report.lost_races += len(fresh) - len(claimed)
        await self._fire(
            [d for d in decisions if not d.needs_claim or d.record.id in claimed], report
        )
        return report

    async def _decide(
        self, record: ScheduleRecord, now: datetime, report: PassReport
    ) -> _Decision | None:
        """What to do with the schedule's due tick: None when it is skipped (or not due)."""
        if record.pending_tick is not None:
            return _Decision(record, record.pending_tick, needs_claim=False)
        spec = record.spec
        timing = spec.timing
        tick = timing.latest_at_or_before(now)
        if record.next_fire_at is None or tick < record.next_fire_at:
            return None  # read as due by a clock ahead of this one
        next_at = timing.next_after(tick)
        late = (now - tick).total_seconds()
        deadline = spec.starting_deadline_seconds
        if deadline is not None and late > deadline:
            reason = f"missed: {late:.0f}s late, more than starting_deadline_seconds ({deadline})"
            await self._skip(record, tick, reason, next_at, report)
            return None
        previous = await self._unfinished(record)
        what = "run" if spec.kind == "dag" else "task"
        if previous is not None and spec.concurrency_policy == ConcurrencyPolicy.FORBID:
            reason = f"Forbid: the previous fire's {what} {previous[0]} is still {previous[1]}"
            await self._skip(record, tick, reason, next_at, report)
            return None
        if previous is not None and spec.concurrency_policy == ConcurrencyPolicy.REPLACE:
            with contextlib.suppress(NotFound):  # expired meanwhile: nothing left to cancel
                if spec.kind == "dag":
                    await self.dags.cancel(previous[0])
                else:
                    await self.engine.cancel(previous[0])
            report.replaced += 1
            log.info(
                "schedule %s: cancelled %s, the unfinished %s of its previous fire (Replace)",
                _name(record),
                previous[0],
                what,
                extra={"schedule": _name(record), "task_id": previous[0]},
            )
        return _Decision(record, tick, needs_claim=True)

    async def _unfinished(self, record: ScheduleRecord) -> tuple[str, str] | None:
        """The id and state of the previous fire's task (or run), when the policy cares and
        it has not finished."""
        if record.spec.concurrency_policy == ConcurrencyPolicy.ALLOW or not record.last_task_id:
            return None
        try:
            if record.spec.kind == "dag":
                run = await self.dags.get(record.last_task_id)
                return None if run.done else (run.id, run.state)
            task = await self.engine.get(record.last_task_id)
        except NotFound:
            return None  # expired after it finished
        return None if task.done else (task.id, task.state.value)

    async def _fire(self, claimed: list[_Decision], report: PassReport) -> None:
        """Submit the tasks of claimed ticks in one call, the runs one each, and record them
        in one statement. Idempotent: a tick's key returns the task (or run) a killed
        scheduler already submitted."""
        fired: list[tuple[_Decision, str]] = []
        tasks: list[_Decision] = []
        for decision in claimed:
            if decision.record.spec.kind != "dag":
                tasks.append(decision)
                continue
            try:
                run_id, _ = await self.dags.submit(
                    decision.record.spec.dag(decision.record.id, decision.tick)
                )
            except UNSUBMITTABLE as exc:
                await self._abandon(decision, exc, report)
                continue
            fired.append((decision, run_id))
        fired += await self._submit_tasks(tasks, report)
        await self._record(fired, report)

    async def _submit_tasks(
        self, claimed: list[_Decision], report: PassReport
    ) -> list[tuple[_Decision, str]]:
        ready: list[tuple[_Decision, TaskSubmission]] = []
        for decision in claimed:
            try:
                submission = decision.record.spec.submission(decision.record.id, decision.tick)
                self.engine.check_payload(submission, "payload")
            except UNSUBMITTABLE as exc:
                await self._abandon(decision, exc, report)
                continue
            ready.append((decision, submission))
        if not ready:
            return []
        try:
            results = await self.engine.submit([s for _, s in ready])
        except UNSUBMITTABLE:
            # One of them cannot be stored: it must not hold up the others.
            results = []
            kept: list[tuple[_Decision, TaskSubmission]] = []
            for decision, submission in ready:
                try:
                    results.extend(await self.engine.submit([submission]))
                except UNSUBMITTABLE as exc:
                    await self._abandon(decision, exc, report)
                    continue
                kept.append((decision, submission))
            ready = kept
        return [(d, r.task_id) for (d, _), r in zip(ready, results, strict=True)]

    async def _record(self, fired: list[tuple[_Decision, str]], report: PassReport) -> None:
        if not fired:
            return
        fires = [
            Fire(d.record.id, d.tick, target_id, d.record.spec.timing.next_after(d.tick))
            for d, target_id in fired
        ]
        now = self.clock.now()
        recorded = await self.store.record_fires(fires, now)
        report.lost_races += len(fires) - len(recorded)
        for (decision, _), fire in zip(fired, fires, strict=True):
            if fire.schedule_id not in recorded:
                continue
            report.fired += 1
            log.info(
                "schedule %s: tick %s fired %s",
                _name(decision.record),
                tick_text(fire.tick),
                fire.task_id,
                extra={
                    "schedule": _name(decision.record),
                    "tick": tick_text(fire.tick),
                    "task_id": fire.task_id,
                    "late_seconds": round((now - fire.tick).total_seconds(), 3),
                },
            )

    async def _abandon(self, decision: _Decision, exc: Exception, report: PassReport) -> None:
        """End the claim of a tick whose task cannot be submitted: the spec was valid when
        stored; if it no longer is, trying again cannot help."""
        record, tick = decision.record, decision.tick
        reason = f"the task could not be submitted: {exc}"
        next_at = record.spec.timing.next_after(tick)
        if await self.store.record_skip(record.id, tick, reason, next_at):
            report.skipped += 1
            log.error(
                "schedule %s: tick %s skipped: %s",
                _name(record),
                tick_text(tick),
                reason,
                extra={"schedule": _name(record), "tick": tick_text(tick)},
            )

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
