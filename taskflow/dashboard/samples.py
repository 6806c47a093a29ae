"""Queue history for the dashboard's charts: a small ring of samples kept in this process.

Every ``interval`` seconds the sampler reads every queue's counters (the same Redis counters
``taskflow queues`` shows) and keeps the last ``size`` readings. Throughput and failure rate
come from the difference of two readings: tasks that ended per second, and the share of them
that failed. Nothing is stored: a restarted server starts a new history.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from taskflow.errors import TaskFlowError
from taskflow.models import QueueStats
from taskflow.waiting import cancel_and_wait

log = logging.getLogger("taskflow.dashboard")

ReadQueues = Callable[[], Awaitable[Sequence[QueueStats]]]


@dataclass(frozen=True)
class Reading:
    at: float  # unix time, seconds
    stats: dict[str, QueueStats]  # by qualified name (namespace/queue)


@dataclass(frozen=True)
class Point:
    """One step of a queue's history: the counts at ``at`` and the rates since the reading
    before it."""

    at: float
    backlog: int
    ready: int
    running: int
    scheduled: int
    dead_letters: int
    throughput: float  # tasks ended (succeeded, failed or cancelled) per second
    failure_rate: float  # failed / ended over the step; 0 when nothing ended

    def as_dict(self) -> dict[str, float | int]:
        return {
            "at": round(self.at, 3),
            "backlog": self.backlog,
            "ready": self.ready,
            "running": self.running,
            "scheduled": self.scheduled,
            "dead_letters": self.dead_letters,
            "throughput": round(self.throughput, 3),
            "failure_rate": round(self.failure_rate, 4),
        }


def _ended(s: QueueStats) -> int:
    return s.succeeded + s.failed + s.cancelled


def point(before: QueueStats | None, after: QueueStats, seconds: float, at: float) -> Point:
    """The step from ``before`` to ``after`` (``before`` None: the queue's first reading).
    Counters that went down (Redis rebuilt them) count as no change."""
    ended = failed = 0
    if before is not None:
        ended = max(0, _ended(after) - _ended(before))
        failed = max(0, after.failed - before.failed)
    return Point(
        at=at,
        backlog=after.backlog,
        ready=after.ready,
        running=after.running,
        scheduled=after.scheduled,
        dead_letters=after.dead_letters,
        throughput=ended / seconds if seconds > 0 else 0.0,
        failure_rate=min(1.0, failed / ended) if ended else 0.0,
    )


class QueueSampler:
    """Reads the queues every ``interval`` seconds; ``history()`` gives the points."""

    def __init__(self, read: ReadQueues, *, interval: float = 2.0, size: int = 300) -> None:
        self._read = read
        self.interval = interval
        self._readings: deque[Reading] = deque(maxlen=size + 1)
        self._task: asyncio.Task[None] | None = None

    async def sample(self, now: float | None = None) -> Reading | None:
        """Take one reading (None when the stores do not answer: a gap in the charts)."""
        try:
            stats = await self._read()
        except TaskFlowError as exc:
            log.debug("queue sample skipped: %s", exc)
            return None
        reading = Reading(
            at=time.time() if now is None else now,
            stats={f"{s.namespace}/{s.queue}": s for s in stats},
        )
        self._readings.append(reading)
        return reading

    def latest(self) -> Reading | None:
        return self._readings[-1] if self._readings else None

    def history(self) -> dict[str, list[Point]]:
        """Per queue (qualified name), its points, oldest first. A queue that first appears
        after the oldest reading is new: its counters start from zero, so the tasks it ran
        before its first reading count in its first step."""
        out: dict[str, list[Point]] = {}
        readings = list(self._readings)
        known = set(readings[0].stats) if readings else set()
        for prev, cur in itertools.pairwise(readings):
            seconds = cur.at - prev.at
            for name, stats in cur.stats.items():
                before = prev.stats.get(name)
                if before is None and name not in known:
                    before = QueueStats(namespace=stats.namespace, queue=stats.queue)
                known.add(name)
                out.setdefault(name, []).append(point(before, stats, seconds, cur.at))
        return out

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="dashboard-sampler")

    async def stop(self) -> None:
        """Stop sampling."""
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self.sample()
            except Exception:
                log.exception("queue sample failed")
            await asyncio.sleep(self.interval)
