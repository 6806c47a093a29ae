"""The task metrics a process updates while it works: worker outcomes, recorder lag, lease
expirations. They live in one registry per process (``process_metrics()``, made on first use),
which every ``/metrics`` endpoint of the process (API server, worker, operator) serves after
its own metrics.

The hot paths call these methods once per claim batch or once per outcome, on the event loop's
thread (as every caller does: the worker runtime, the completion path and housekeeping are
asyncio code), so the figures are plain integers and floats kept per ``(queue, handler)``: an
update is a dictionary lookup and a few additions, with no lock and no label resolution. The
Prometheus families are built from them when ``/metrics`` is scraped.

Labels are bounded: ``namespace``, ``queue``, ``handler`` and ``outcome`` (never a task id).
"""

from __future__ import annotations

import functools
import time
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from taskflow.keys import QueueRef
from taskflow.models import ClaimedTask, Outcome, TaskState

if TYPE_CHECKING:
    import asyncio
    from datetime import datetime

    from taskflow.completion import Completed
    from taskflow.models import AttemptResult

TASK_LABELS = ("namespace", "queue", "handler")

#: Handler run times: from 5 ms to an hour.
DURATION_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
)  # fmt: skip
#: Waiting in the queue: from 1 ms to an hour.
WAIT_BUCKETS = (
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0,
)  # fmt: skip
#: Handler end to PostgreSQL commit: from 1 ms to 30 s.
LAG_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip

_ATTEMPT_FAILURES = (Outcome.FAILED, Outcome.TIMEOUT)

#: name -> help text of the counters kept per (queue, handler), in ``_Series`` slot order.
COUNTERS = {
    "started": ("taskflow_tasks_started", "Attempts claimed by a worker."),
    "succeeded": ("taskflow_tasks_succeeded", "Tasks whose attempt succeeded (recorded)."),
    "failed": (
        "taskflow_tasks_failed",
        "Attempts that failed or timed out (recorded), retried or not.",
    ),
    "retried": (
        "taskflow_tasks_retried",
        "Failed attempts that left a retry (the task runs again).",
    ),
    "dead_lettered": (
        "taskflow_tasks_dead_lettered",
        "Tasks failed for good (no retry left, or a permanent error): the dead letters.",
    ),
    "cancelled": (
        "taskflow_tasks_cancelled",
        "Attempts that ended cancelled while running (recorded).",
    ),
}


class Histogram:
    """Observations of one labelled histogram: a count per bucket (not cumulative), the sum."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1  # le is inclusive
        self.sum += value

    def buckets(self) -> list[tuple[str, float]]:
        out, total = [], 0
        for bound, n in zip((*self.bounds, float("inf")), self.counts, strict=True):
            total += n
            out.append(("+Inf" if bound == float("inf") else repr(float(bound)), float(total)))
        return out


class _Series:
    """The figures of one ``(queue, handler)``."""

    __slots__ = ("cancelled", "dead_lettered", "failed", "labels", "retried", "started",
                 "succeeded", "wait")  # fmt: skip

    def __init__(self, labels: tuple[str, str, str]) -> None:
        self.labels = labels
        self.started = self.succeeded = self.failed = 0
        self.retried = self.dead_lettered = self.cancelled = 0
        self.wait = Histogram(WAIT_BUCKETS)


class _Queue:
    """The series of one queue, by handler (and by handler and outcome for durations)."""

    __slots__ = ("durations", "ref", "series")

    def __init__(
        self,
        ref: QueueRef,
        series: dict[str, _Series] | None = None,
        durations: dict[tuple[str, Outcome], Histogram] | None = None,
    ) -> None:
        self.ref = ref
        self.series = {} if series is None else series
        self.durations = {} if durations is None else durations


def submitted_ms(task_id: str) -> int:
    """When a task was submitted, from its id (a UUIDv7 starts with its creation time in ms)."""
    return int(task_id[:8] + task_id[9:13], 16)


class ProcessMetrics(Collector):
    """Task metrics of this process (worker runtime, completion path, housekeeping)."""

    def __init__(self) -> None:
        # By the identity of the QueueRef object: each worker passes the same one with every
        # claim, so the lookup skips hashing it (the entry keeps it alive, and checks it).
        self._queues: dict[int, _Queue] = {}
        self._series: list[_Series] = []
        self._durations: list[tuple[tuple[str, ...], Histogram]] = []
        self._lag = Histogram(LAG_BUCKETS)
        self._expired: dict[QueueRef, int] = {}
        self._poisoned: dict[QueueRef, int] = {}
        self.registry = CollectorRegistry()
        self.registry.register(self)

    def _queue(self, ref: QueueRef) -> _Queue:
        found = self._queues.get(id(ref))
        if found is None or found.ref is not ref:
            for q in self._queues.values():  # an equal ref seen before (another object)
                if q.ref == ref:
                    found = q
                    break
            else:
                found = _Queue(ref)
            self._queues[id(ref)] = _Queue(ref, found.series, found.durations)
            found = self._queues[id(ref)]
        return found

    def _of(self, queue: _Queue, handler: str) -> _Series:
        found = queue.series.get(handler)
        if found is None:
            ref = queue.ref
            found = queue.series[handler] = _Series((ref.namespace, ref.name, handler))
            self._series.append(found)
        return found

    # -- hooks ------------------------------------------------------------------------------

    def claimed(self, tasks: Iterable[ClaimedTask], now_ms: int) -> None:
        """A batch of claims (``now_ms``: the claim time Redis reported)."""
        queue: _Queue | None = None
        for task in tasks:
            blob = task.blob
            if queue is None or queue.ref is not task.queue:
                queue = self._queue(task.queue)
            series = queue.series.get(blob.handler) or self._of(queue, blob.handler)
            series.started += 1
            if task.attempt == 1 and not blob.run_id:
                ready_ms = max(submitted_ms(task.id), blob.due_ms)
                series.wait.observe(max(0, now_ms - ready_ms) / 1000)

    def ran(self, claim: ClaimedTask, outcome: Outcome, seconds: float) -> None:
        """A handler ended (claim to end), whatever is recorded of it."""
        queue = self._queue(claim.queue)
        key = (claim.blob.handler, outcome)
        hist = queue.durations.get(key)
        if hist is None:
            hist = queue.durations[key] = Histogram(DURATION_BUCKETS)
            ref = queue.ref
            self._durations.append(((ref.namespace, ref.name, key[0], outcome.value), hist))
        hist.observe(seconds)

    def ended(
        self, claim: ClaimedTask, result: AttemptResult, done: asyncio.Future[Completed]
    ) -> None:
        """An attempt's outcome, once the completion path settled it: counted only when
        PostgreSQL recorded it as this attempt's own (a refused duplicate is not counted)."""
        if done.cancelled() or done.exception() is not None or not done.result().recorded:
            return
        queue = self._queue(claim.queue)
        series = queue.series.get(claim.blob.handler) or self._of(queue, claim.blob.handler)
        state = result.state
        if state is TaskState.SUCCEEDED:
            series.succeeded += 1
            return
        if result.outcome in _ATTEMPT_FAILURES:
            series.failed += 1
        elif result.outcome is Outcome.CANCELLED:
            series.cancelled += 1
        if state is TaskState.RETRYING:
            series.retried += 1
        elif state is TaskState.FAILED:
            series.dead_lettered += 1

    def recorded(self, finished_at: Iterable[datetime]) -> None:
        """Outcomes just committed to PostgreSQL, by the time their handler ended."""
        now = time.time()
        observe = self._lag.observe
        for end in finished_at:
            observe(max(0.0, now - end.timestamp()))

    def leases_ended(self, ref: QueueRef, leases: int, poisoned: int) -> None:
        if leases:
            self._expired[ref] = self._expired.get(ref, 0) + leases
        if poisoned:
            self._poisoned[ref] = self._poisoned.get(ref, 0) + poisoned

    # -- exposition -------------------------------------------------------------------------

    def collect(self) -> Iterator[Metric]:
        series = list(self._series)
        for slot, (name, doc) in COUNTERS.items():
            family = CounterMetricFamily(name, doc, labels=TASK_LABELS)
            for s in series:
                family.add_metric(s.labels, getattr(s, slot))
            yield family
        wait = HistogramMetricFamily(
            "taskflow_task_queue_wait_seconds",
            "Submission (or due time, for a delayed task) to first claim; DAG steps and later "
            "attempts are not observed.",
            labels=TASK_LABELS,
        )
        for s in series:
            if s.wait.counts != [0] * len(s.wait.counts):
                wait.add_metric(s.labels, s.wait.buckets(), s.wait.sum)
        yield wait
        duration = HistogramMetricFamily(
            "taskflow_task_duration_seconds",
            "Claim to handler end, by how the attempt ended.",
            labels=[*TASK_LABELS, "outcome"],
        )
        for labels, hist in list(self._durations):
            duration.add_metric(labels, hist.buckets(), hist.sum)
        yield duration
        lag = HistogramMetricFamily(
            "taskflow_recorder_lag_seconds",
            "Handler end to the PostgreSQL commit of its outcome.",
        )
        lag.add_metric([], self._lag.buckets(), self._lag.sum)
        yield lag
        for name, doc, values in (
            (
                "taskflow_lease_expirations",
                "Expired leases ended by housekeeping (a worker died or stalled).",
                self._expired,
            ),
            (
                "taskflow_tasks_poisoned",
                "Tasks failed by housekeeping after too many lost leases.",
                self._poisoned,
            ),
        ):
            family = CounterMetricFamily(name, doc, labels=("namespace", "queue"))
            for ref, n in list(values.items()):
                family.add_metric((ref.namespace, ref.name), n)
            yield family

    def render(self) -> bytes:
        return generate_latest(self.registry)


@functools.cache
def process_metrics() -> ProcessMetrics:
    """This process's task metrics (made on first use)."""
    return ProcessMetrics()
