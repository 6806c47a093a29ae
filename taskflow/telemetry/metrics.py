"""The task metrics a process updates while it works: worker outcomes, recorder lag, lease
expirations. They live in one registry per process (``process_metrics()``, made on first use),
which every ``/metrics`` endpoint of the process (API server, worker, operator) serves after
its own metrics.

The hot paths call these methods once per claim batch or once per outcome. Labelled children
are cached per ``(queue, handler)``, so an update is a dictionary lookup and an addition: no
label resolution, no lock beyond prometheus-client's own per value.

Labels are bounded: ``namespace``, ``queue``, ``handler`` and ``outcome`` (never a task id).
"""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

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


@dataclass(frozen=True, slots=True)
class _TaskSeries:
    """The labelled children of one ``(queue, handler)``."""

    started: Counter
    succeeded: Counter
    failed: Counter
    retried: Counter
    dead_lettered: Counter
    cancelled: Counter
    queue_wait: Histogram


def submitted_ms(task_id: str) -> int:
    """When a task was submitted, from its id (a UUIDv7 carries its creation time in ms)."""
    return uuid.UUID(task_id).int >> 80


class ProcessMetrics:
    """Task metrics of this process (worker runtime, completion path, housekeeping)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry

        def counter(name: str, doc: str, labels: Iterable[str] = TASK_LABELS) -> Counter:
            return Counter(name, doc, list(labels), registry=r)

        self.started = counter("taskflow_tasks_started", "Attempts claimed by a worker.")
        self.succeeded = counter(
            "taskflow_tasks_succeeded", "Tasks whose attempt succeeded (recorded)."
        )
        self.failed = counter(
            "taskflow_tasks_failed",
            "Attempts that failed or timed out (recorded), retried or not.",
        )
        self.retried = counter(
            "taskflow_tasks_retried", "Failed attempts that left a retry (the task runs again)."
        )
        self.dead_lettered = counter(
            "taskflow_tasks_dead_lettered",
            "Tasks failed for good (no retry left, or a permanent error): the dead letters.",
        )
        self.cancelled = counter(
            "taskflow_tasks_cancelled", "Attempts that ended cancelled while running (recorded)."
        )
        self.queue_wait = Histogram(
            "taskflow_task_queue_wait_seconds",
            "Submission (or due time, for a delayed task) to first claim; DAG steps with "
            "parents and later attempts are not observed.",
            list(TASK_LABELS),
            buckets=WAIT_BUCKETS,
            registry=r,
        )
        self.duration = Histogram(
            "taskflow_task_duration_seconds",
            "Claim to handler end, by how the attempt ended.",
            [*TASK_LABELS, "outcome"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.recorder_lag = Histogram(
            "taskflow_recorder_lag_seconds",
            "Handler end to the PostgreSQL commit of its outcome.",
            buckets=LAG_BUCKETS,
            registry=r,
        )
        self.lease_expirations = counter(
            "taskflow_lease_expirations",
            "Expired leases ended by housekeeping (a worker died or stalled).",
            ("namespace", "queue"),
        )
        self.poisoned = counter(
            "taskflow_tasks_poisoned",
            "Tasks failed by housekeeping after too many lost leases.",
            ("namespace", "queue"),
        )
        self._series: dict[tuple[QueueRef, str], _TaskSeries] = {}
        self._durations: dict[tuple[QueueRef, str, Outcome], Histogram] = {}

    def _of(self, ref: QueueRef, handler: str) -> _TaskSeries:
        key = (ref, handler)
        found = self._series.get(key)
        if found is None:
            labels = (ref.namespace, ref.name, handler)
            found = self._series[key] = _TaskSeries(
                started=self.started.labels(*labels),
                succeeded=self.succeeded.labels(*labels),
                failed=self.failed.labels(*labels),
                retried=self.retried.labels(*labels),
                dead_lettered=self.dead_lettered.labels(*labels),
                cancelled=self.cancelled.labels(*labels),
                queue_wait=self.queue_wait.labels(*labels),
            )
        return found

    # -- hooks ------------------------------------------------------------------------------

    def claimed(self, tasks: Iterable[ClaimedTask], now_ms: int) -> None:
        """A batch of claims (``now_ms``: the claim time Redis reported)."""
        for task in tasks:
            series = self._of(task.queue, task.blob.handler)
            series.started.inc()
            if task.attempt == 1 and not task.parents and not task.blob.run_id:
                ready_ms = max(submitted_ms(task.id), task.blob.due_ms)
                series.queue_wait.observe(max(0, now_ms - ready_ms) / 1000)

    def ran(self, claim: ClaimedTask, outcome: Outcome, seconds: float) -> None:
        """A handler ended (claim to end), whatever is recorded of it."""
        key = (claim.queue, claim.blob.handler, outcome)
        hist = self._durations.get(key)
        if hist is None:
            ref = claim.queue
            hist = self._durations[key] = self.duration.labels(
                ref.namespace, ref.name, claim.blob.handler, outcome.value
            )
        hist.observe(seconds)

    def ended(
        self, claim: ClaimedTask, result: AttemptResult, done: asyncio.Future[Completed]
    ) -> None:
        """An attempt's outcome, once the completion path settled it: counted only when
        PostgreSQL recorded it as this attempt's own (a refused duplicate is not counted)."""
        if done.cancelled() or done.exception() is not None or not done.result().recorded:
            return
        series = self._of(claim.queue, claim.blob.handler)
        state = result.state
        if state is TaskState.SUCCEEDED:
            series.succeeded.inc()
            return
        if result.outcome in _ATTEMPT_FAILURES:
            series.failed.inc()
        elif result.outcome is Outcome.CANCELLED:
            series.cancelled.inc()
        if state is TaskState.RETRYING:
            series.retried.inc()
        elif state is TaskState.FAILED:
            series.dead_lettered.inc()

    def recorded(self, finished_at: Iterable[datetime]) -> None:
        """Outcomes just committed to PostgreSQL, by the time their handler ended."""
        now = time.time()
        for end in finished_at:
            self.recorder_lag.observe(max(0.0, now - end.timestamp()))

    def leases_ended(self, ref: QueueRef, leases: int, poisoned: int) -> None:
        if leases:
            self.lease_expirations.labels(ref.namespace, ref.name).inc(leases)
        if poisoned:
            self.poisoned.labels(ref.namespace, ref.name).inc(poisoned)

    def render(self) -> bytes:
        return generate_latest(self.registry)


@functools.cache
def process_metrics() -> ProcessMetrics:
    """This process's task metrics (made on first use)."""
    return ProcessMetrics()
