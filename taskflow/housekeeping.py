"""Housekeeping: the periodic sweep that keeps Redis honest and PostgreSQL bounded.

Each sweep, for every queue: leases whose deadline passed are ended as PostgreSQL decides
(``taskflow.recovery``: the attempt is recorded as ``lost`` and the task runs again, unless its
outcome was recorded before its worker died), and delayed tasks that are due are promoted.
Then Redis is checked against PostgreSQL: when the epoch key is missing (Redis restarted
without its data) every pending task is dispatched again at once; otherwise a slice of
pending tasks is checked each sweep, so a task whose enqueue never reached Redis is
found within a bounded number of sweeps. Finally finished tasks past the retention
period are deleted in batches.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import timedelta

from taskflow import keys as K
from taskflow.engine import Engine
from taskflow.errors import STORE_ERRORS
from taskflow.keys import QueueRef
from taskflow.models import utcnow
from taskflow.recovery import dispatch_unknown, reclaim_expired
from taskflow.telemetry.metrics import process_metrics
from taskflow.waiting import stopped_within

log = logging.getLogger("taskflow.housekeeping")


@dataclass
class SweepReport:
    reclaimed: int = 0
    poisoned: int = 0
    promoted: int = 0
    redispatched: int = 0
    deleted: int = 0
    rebuilt: bool = False
    errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        counts = {
            "reclaimed": self.reclaimed,
            "poisoned": self.poisoned,
            "promoted": self.promoted,
            "dispatched again": self.redispatched,
            "deleted": self.deleted,
        }
        text = ", ".join(f"{n} {what}" for what, n in counts.items() if n)
        return ("index rebuilt; " if self.rebuilt else "") + (text or "nothing to do")


class Housekeeper:
    def __init__(
        self,
        engine: Engine,
        *,
        check_page: int = 5000,
        delete_batch: int = 5000,
    ) -> None:
        self.engine = engine
        self.check_page = check_page
        self.delete_batch = delete_batch
        self._cursor: str | None = None
        self._legacy_checked = False

    async def run(self, stop: asyncio.Event) -> None:
        interval = self.engine.settings.sweep_interval
        while not stop.is_set():
            started = time.monotonic()
            try:
                report = await self.sweep_once()
                if report.reclaimed or report.redispatched or report.deleted or report.rebuilt:
                    log.info("sweep: %s", report.summary(), extra=vars(report))
            except STORE_ERRORS as exc:
                log.warning("sweep skipped: store unavailable: %s", exc)
            except Exception:
                log.exception("sweep failed")
            elapsed = time.monotonic() - started
            await stopped_within(stop, max(0.05, interval - elapsed))

    async def sweep_once(self) -> SweepReport:
        report = SweepReport()
        d = self.engine.dispatcher
        if not self._legacy_checked:
            await self._forget_legacy_parked()
        for ref in await d.queues():
            await self._reclaim(ref, report)
            report.promoted += await d.promote(ref)
        if not await d.redis.exists(K.EPOCH):
            await self._rebuild(report)
            await d.redis.set(K.EPOCH, str(time.time()))
            report.rebuilt = True
            if report.redispatched:
                log.warning(
                    "redis had lost its data: %d pending task(s) dispatched again from PostgreSQL",
                    report.redispatched,
                )
        else:
            await self._check_slice(report)
        await self._retention(report)
        return report

    async def _forget_legacy_parked(self) -> None:
        """Once per process: tasks parked under a concurrency limit by an older TaskFlow sit
        in per-key sets nothing reads any more; forget them in Redis so that this and later
        sweeps dispatch them again from PostgreSQL (they are still queued there)."""
        forgotten = await self.engine.dispatcher.forget_legacy_parked()
        self._legacy_checked = True
        if forgotten:
            log.warning(
                "%d task(s) parked by an older version forgotten in redis; they are "
                "dispatched again from PostgreSQL",
                forgotten,
            )
        # From here on the sweep's slices find them (unknown to Redis, unchanged past the grace).
        self._cursor = None

    async def _reclaim(self, ref: QueueRef, report: SweepReport) -> None:
        while True:
            reclaimed = await reclaim_expired(self.engine, ref, limit=1000)
            report.reclaimed += reclaimed.leases
            report.poisoned += reclaimed.poisoned
            process_metrics().leases_ended(ref, reclaimed.leases, reclaimed.poisoned)
            if reclaimed.leases < 1000:
                return

    async def _rebuild(self, report: SweepReport) -> None:
        """Redis lost its data: dispatch every pending task again."""
        log.info("no epoch marker in redis: (re)building the dispatch index from PostgreSQL")
        d = self.engine.dispatcher
        d.forget_registrations()
        for ref, config in (await self.engine.queue_store.all()).items():
            await d.register_queue(ref)
            await d.set_rate_limit(ref, config.rate)
        for (namespace, queue), counts in (await self.engine.store.finished_counts()).items():
            await d.restore_counters(QueueRef(namespace, queue), counts)
        after: str | None = None
        while True:
            page = await self.engine.store.pending_page(after, self.check_page)
            if not page:
                return
            report.redispatched += await dispatch_unknown(self.engine, page, grace=False)
            after = page[-1].id

    async def _check_slice(self, report: SweepReport) -> None:
        page = await self.engine.store.pending_page(self._cursor, self.check_page)
        self._cursor = page[-1].id if len(page) == self.check_page else None
        report.redispatched += await dispatch_unknown(self.engine, page, grace=True)

    async def _retention(self, report: SweepReport) -> None:
        seconds = self.engine.settings.retention_seconds
        if seconds <= 0:
            return
        cutoff = utcnow() - timedelta(seconds=seconds)
        while True:
            n = await self.engine.store.delete_finished_before(cutoff, self.delete_batch)
            report.deleted += n
            if n < self.delete_batch:
                return
