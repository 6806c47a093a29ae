"""The engine's side of a worker process: every transition a worker makes to a task.

A worker (``taskflow_worker``) runs handlers; everything it does to a task goes through one
``WorkerSession``: claim (Redis lease, then the claim recorded), progress, the end of an
attempt (succeeded, retrying with backoff, failed, cancelled; the outcome checked storable),
the hand-back on shutdown, heartbeats that keep leases alive while a handler runs *and* while
its outcome is being recorded, and the cancel announcements. Outcomes go through the
completion path (``taskflow.completion``): PostgreSQL first, then Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from taskflow.backoff import retry_delay
from taskflow.completion import Completed, CompletionRecorder
from taskflow.config import Settings
from taskflow.errors import STORE_ERRORS
from taskflow.keys import QueueKeys, QueueRef
from taskflow.models import (
    AttemptResult,
    ClaimedTask,
    Outcome,
    RateLimit,
    TaskState,
    WorkerStatus,
    utcnow,
)
from taskflow.queue.dispatch import Dispatcher
from taskflow.store.dags import DagStore
from taskflow.store.tasks import Claim, Progress, TaskStore
from taskflow.telemetry.metrics import process_metrics
from taskflow.values import (
    MAX_ERROR_CHARS,
    MAX_PROGRESS_MESSAGE_CHARS,
    MAX_TRACEBACK_CHARS,
    UnstorableValue,
    clean_text,
    encode_json,
)

log = logging.getLogger("taskflow.worker")

#: How long a worker trusts its copy of a queue's rate limit.
RATE_LIMIT_TTL = 1.0


@dataclass(frozen=True)
class AttemptEnd:
    """How a handler run ended, as the worker saw it."""

    outcome: Outcome  # succeeded, failed, timeout or cancelled
    result: Any = None  # what the handler returned (succeeded)
    error: str | None = None
    traceback: str | None = None
    retryable: bool = True


@dataclass(frozen=True)
class LeaseEvents:
    """What the session tells the worker about its claims, by task id."""

    cancel: Callable[[str], None]  # a cancel was requested: stop the handler
    lost: Callable[[str], None]  # the lease is gone (taken over): abandon the handler
    ended: Callable[[str], None] = field(default=lambda _: None)  # ended before it was claimed


class WorkerSession:
    """Claims, heartbeats and outcomes of one worker process, over one engine connection."""

    def __init__(
        self,
        settings: Settings,
        name: str,
        store: TaskStore,
        dispatcher: Dispatcher,
        waiter: Dispatcher,
        events: LeaseEvents,
    ) -> None:
        self.settings = settings
        self.name = name
        self.lease_ms = int(settings.lease_seconds * 1000)
        self._store = store
        self._dispatcher = dispatcher
        self._waiter = waiter  # blocking calls (BLPOP, pub/sub) get their own connections
        self._events = events
        self._held: dict[str, ClaimedTask] = {}  # claims whose lease this worker keeps
        self._ending: set[str] = set()  # tokens of held claims whose outcome is on its way
        self._rates: dict[QueueRef, tuple[float, RateLimit | None]] = {}
        self._owns_connections = False
        self._dags = DagStore(store)
        self.recorder = CompletionRecorder(store, dispatcher, on_already_ended=self._already_ended)
        self.recorder.start()
        self._metrics = process_metrics()

    @classmethod
    async def open(cls, settings: Settings, name: str, events: LeaseEvents) -> WorkerSession:
        store = await TaskStore.open(settings, min_size=1)
        dispatcher = Dispatcher.connect(settings.redis_url)
        waiter = Dispatcher.connect(settings.redis_url)
        session = cls(settings, name, store, dispatcher, waiter, events)
        session._owns_connections = True
        return session

    async def close(self, timeout: float) -> None:
        """Record what is pending (for at most ``timeout`` seconds), then disconnect."""
        await self.recorder.close(timeout)
        with contextlib.suppress(*STORE_ERRORS):
            await self._dispatcher.forget_worker(self.name)
        if self._owns_connections:
            await self._store.close()
            await self._dispatcher.redis.aclose()
            await self._waiter.redis.aclose()

    @property
    def held(self) -> int:
        """Claims whose lease this worker holds (running, or their outcome being recorded)."""
        return len(self._held)

    # -- claiming -----------------------------------------------------------------------------

    async def register(self, queues: Sequence[QueueRef]) -> None:
        for ref in queues:
            await self._dispatcher.register_queue(ref)

    async def claim(self, ref: QueueRef, count: int) -> tuple[list[ClaimedTask], int | None]:
        """Lease up to ``count`` tasks of ``ref``; also the ms until the next delayed task is
        due (None: none is waiting)."""
        batch = await self._dispatcher.claim(
            ref, count, lease_ms=self.lease_ms, worker=self.name, rate=await self._rate(ref)
        )
        started = utcnow()
        tasks = batch.tasks
        for task in tasks:
            self._held[task.id] = task
            self.recorder.claimed(Claim(task.id, task.attempt, self.name, started, task.token))
        self._metrics.claimed(tasks, batch.now_ms)
        steps = [t.id for t in tasks if t.blob.run_id]
        if steps:
            tasks = await self._with_parents(tasks, steps)
        due = None if batch.next_due_ms is None else max(0, batch.next_due_ms - batch.now_ms)
        return tasks, due

    async def _with_parents(self, tasks: list[ClaimedTask], steps: list[str]) -> list[ClaimedTask]:
        """DAG steps get their parents' results (from PostgreSQL: results stay out of Redis).
        Until PostgreSQL answers, the claims' leases are held and heartbeated as usual."""
        backoff = 0.05
        while True:
            try:
                parents = await self._dags.parent_results(steps)
                break
            except STORE_ERRORS as exc:
                log.warning("reading parents' results failed; retrying: %s", exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
        out = []
        for task in tasks:
            if task.id in parents:
                task = replace(task, parents=parents[task.id])
                self._held[task.id] = task
            out.append(task)
        return out

    async def wait_for_work(self, queues: Sequence[QueueRef], timeout: float) -> None:
        """Block until a task may be ready on one of ``queues``, at most ``timeout`` seconds."""
        await self._waiter.wait_for_work(queues, timeout)

    async def _rate(self, ref: QueueRef) -> RateLimit | None:
        now = time.monotonic()
        cached = self._rates.get(ref)
        if cached is None or now - cached[0] > RATE_LIMIT_TTL:
            cached = (now, await self._dispatcher.rate_limit(ref))
            self._rates[ref] = cached
        return cached[1]

    # -- while it runs ------------------------------------------------------------------------

    def progress(self, claim: ClaimedTask, fraction: float, message: str | None) -> None:
        text = clean_text(message, MAX_PROGRESS_MESSAGE_CHARS)
        self.recorder.progress(Progress(claim.id, claim.attempt, fraction, text))

    async def heartbeat(self) -> None:
        """Extend every held lease once; reports cancels and lost leases to the worker."""
        by_queue: dict[QueueRef, list[ClaimedTask]] = defaultdict(list)
        for claim in self._held.values():
            by_queue[claim.queue].append(claim)
        for ref, group in by_queue.items():
            try:
                statuses = await self._dispatcher.extend(
                    ref, [(c.id, c.token) for c in group], self.lease_ms
                )
            except STORE_ERRORS as exc:
                log.warning("heartbeat failed", extra={"error": str(exc)})
                continue
            for claim, status in zip(group, statuses, strict=True):
                if claim.token in self._ending:
                    continue  # the completion path ends it (a "lost" may be its own ack)
                if status == "cancel":
                    self._events.cancel(claim.id)
                elif status == "lost" and self._held.pop(claim.id, None) is not None:
                    log.warning("lease lost; abandoning task", extra={"task_id": claim.id})
                    self._events.lost(claim.id)

    async def heartbeat_forever(self, status: Callable[[], WorkerStatus] | None = None) -> None:
        """Heartbeat every third of the lease; with ``status``, announce the worker too."""
        interval = max(0.05, self.settings.lease_seconds / 3)
        while True:
            if status is not None:
                try:
                    await self._dispatcher.announce_worker(status())
                except STORE_ERRORS as exc:
                    log.debug("worker announcement failed: %s", exc)
            await asyncio.sleep(interval)
            await self.heartbeat()

    async def watch_cancellations(self, queues: Sequence[QueueRef]) -> None:
        """Stop handlers as soon as their task is cancelled (the heartbeat is the fallback)."""
        channels = [QueueKeys(r).cancel_channel for r in queues]
        while True:
            try:
                async with self._waiter.redis.pubsub() as pubsub:
                    await pubsub.subscribe(*channels)
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            data = message["data"]
                            task_id = data.decode() if isinstance(data, bytes) else str(data)
                            if task_id in self._held:
                                self._events.cancel(task_id)
            except STORE_ERRORS as exc:
                log.warning("cancel listener reconnecting", extra={"error": str(exc)})
                await asyncio.sleep(1.0)

    def _already_ended(self, task_id: str) -> None:
        if task_id in self._held:
            log.warning(
                "task had already ended when its claim was recorded; stopping it",
                extra={"task_id": task_id},
            )
            self._events.ended(task_id)

    # -- the end of an attempt ----------------------------------------------------------------

    def finish(
        self, claim: ClaimedTask, end: AttemptEnd, *, max_retries: int
    ) -> asyncio.Future[Completed]:
        """Record how an attempt ended: succeeded, retrying (with backoff) while retries are
        left, failed, or cancelled. A result PostgreSQL cannot store fails the attempt
        permanently, saying why (``result is not valid JSON: NaN``)."""
        now = utcnow()
        error = clean_text(end.error, MAX_ERROR_CHARS)
        traceback = clean_text(end.traceback, MAX_TRACEBACK_CHARS, keep="end")
        outcome, retryable, result_json = end.outcome, end.retryable, None
        if outcome is Outcome.SUCCEEDED:
            try:
                result_json = encode_json(end.result, limit=self.settings.max_result_bytes)
            except UnstorableValue as exc:
                outcome, retryable, error = Outcome.FAILED, False, f"result {exc}"
                log.warning(
                    "handler returned a result that cannot be stored",
                    extra={"task_id": claim.id, "error": error},
                )
        delay_ms = 0
        next_run_at = None
        if outcome is Outcome.SUCCEEDED:
            state = TaskState.SUCCEEDED
        elif outcome is Outcome.CANCELLED:
            state = TaskState.CANCELLED
        elif retryable and claim.failures + 1 <= max_retries:
            state = TaskState.RETRYING
            delay = retry_delay(claim.blob.retry, claim.failures + 1)
            delay_ms = int(delay * 1000)
            next_run_at = now + timedelta(milliseconds=delay_ms)
        else:
            state = TaskState.FAILED
        result = AttemptResult(
            task_id=claim.id,
            attempt=claim.attempt,
            token=claim.token,
            worker=self.name,
            state=state,
            outcome=outcome,
            finished_at=now,
            result_json=result_json,
            error=error,
            traceback=traceback,
            next_run_at=next_run_at,
            count_failure=state in (TaskState.RETRYING, TaskState.FAILED),
            run_id=claim.blob.run_id,
        )
        return self._end(claim, result, delay_ms)

    def release(self, claim: ClaimedTask, reason: str) -> asyncio.Future[Completed]:
        """Hand a claim back unrun (shutdown): it runs again soon, no failure is counted."""
        result = AttemptResult(
            task_id=claim.id,
            attempt=claim.attempt,
            token=claim.token,
            worker=self.name,
            state=TaskState.QUEUED,
            outcome=Outcome.RELEASED,
            finished_at=utcnow(),
            error=reason,
            run_id=claim.blob.run_id,
        )
        return self._end(claim, result, 0)

    def abandon(self, claim: ClaimedTask) -> None:
        """Stop heartbeating a claim (its lease was lost): housekeeping owns it now."""
        self._held.pop(claim.id, None)

    def _end(
        self, claim: ClaimedTask, result: AttemptResult, delay_ms: int
    ) -> asyncio.Future[Completed]:
        done = self.recorder.end(claim.queue, result, delay_ms)
        self._ending.add(claim.token)

        def settled(f: asyncio.Future[Completed]) -> None:
            self._metrics.ended(claim, result, f)
            self._ending.discard(claim.token)
            if self._held.get(claim.id) is claim:
                del self._held[claim.id]

        done.add_done_callback(settled)
        return done

    async def flushed(self) -> None:
        """Wait until everything reported so far is recorded and applied."""
        await self.recorder.flushed()
