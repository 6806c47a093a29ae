"""The worker process: claim in batches, run handlers concurrently, heartbeat, record.

Claims come from Redis (one script call per batch); outcomes go to Redis first (fenced by
the claim's token, so a worker whose lease was taken over cannot record anything), then to
PostgreSQL in batches. SIGTERM drains: no new claims, in-flight tasks get ``drain_grace``
seconds, the rest are handed back unrun without counting a failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import redis.asyncio as aioredis

from taskflow.backoff import retry_delay
from taskflow.batching import Coalescer
from taskflow.config import Settings
from taskflow.keys import QueueKeys, QueueRef
from taskflow.models import AttemptResult, ClaimedTask, Outcome, TaskState, utcnow
from taskflow.queue.dispatch import Dispatcher, RateLimit
from taskflow.recording import ResultRecorder
from taskflow.store.tasks import TaskStore
from taskflow_worker.context import TaskContext
from taskflow_worker.execution import Execution, execute
from taskflow_worker.router import Router

log = logging.getLogger("taskflow.worker")

AckItem = tuple[str, str, str]


@dataclass
class WorkerConfig:
    queues: Sequence[QueueRef]
    concurrency: int = 10
    name: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    drain_grace: float = 25.0
    claim_batch: int = 100


@dataclass
class InFlight:
    claim: ClaimedTask
    ctx: TaskContext
    task: asyncio.Task[None] | None = None
    cancel_requested: bool = False
    lease_lost: bool = False


class Worker:
    def __init__(self, router: Router, settings: Settings, config: WorkerConfig) -> None:
        if not config.queues:
            raise ValueError("a worker needs at least one queue")
        if config.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.router = router
        self.settings = settings
        self.config = config
        self.inflight: dict[str, InFlight] = {}
        self.claimed_total = 0
        self.finished_total = 0
        self.draining = False
        self._lease_ms = int(settings.lease_seconds * 1000)
        self._slot_freed = asyncio.Event()
        self._executor = ThreadPoolExecutor(
            max_workers=config.concurrency, thread_name_prefix="taskflow-handler"
        )
        self._store: TaskStore | None = None
        self._dispatcher: Dispatcher | None = None
        self._waiter: Dispatcher | None = None
        self._recorder: ResultRecorder | None = None
        self._ackers: dict[QueueRef, Coalescer[AckItem, bool]] = {}
        self._rates: dict[QueueRef, tuple[float, RateLimit | None]] = {}

    # -- lifecycle ----------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Work until ``stop`` is set, then drain."""
        self._store = await TaskStore.open(self.settings, min_size=1)
        self._dispatcher = Dispatcher(aioredis.Redis.from_url(self.settings.redis_url))
        self._waiter = Dispatcher(aioredis.Redis.from_url(self.settings.redis_url))
        self._recorder = ResultRecorder(self._store)
        self._recorder.start()
        for ref in self.config.queues:
            await self._dispatcher.register_queue(ref)
        log.info(
            "worker started",
            extra={
                "worker": self.config.name,
                "queues": [q.qualified for q in self.config.queues],
                "concurrency": self.config.concurrency,
                "handlers": self.router.names(),
            },
        )
        claimer = asyncio.create_task(self._claim_loop(), name="claim-loop")
        heart = asyncio.create_task(self._heartbeat_loop(), name="heartbeat")
        listener = asyncio.create_task(self._cancel_listener(), name="cancel-listener")
        try:
            await stop.wait()
        finally:
            self.draining = True
            claimer.cancel()
            await asyncio.gather(claimer, return_exceptions=True)
            await self._drain()
            heart.cancel()
            listener.cancel()
            await asyncio.gather(heart, listener, return_exceptions=True)
            await self._recorder.close()
            await self._store.close()
            await self._dispatcher.redis.aclose()
            await self._waiter.redis.aclose()
            self._executor.shutdown(wait=False, cancel_futures=True)
            log.info("worker stopped", extra={"worker": self.config.name})

    async def _drain(self) -> None:
        pending = [f.task for f in self.inflight.values() if f.task is not None]
        if pending:
            log.info(
                "draining", extra={"in_flight": len(pending), "grace": self.config.drain_grace}
            )
            await asyncio.wait(pending, timeout=self.config.drain_grace)
        leftovers = list(self.inflight.values())
        for f in leftovers:
            if f.task is not None:
                f.task.cancel()
        if leftovers:
            await asyncio.gather(*(f.task for f in leftovers if f.task), return_exceptions=True)
            await self._release(leftovers)

    async def _release(self, flights: Sequence[InFlight]) -> None:
        """Hand tasks back unrun: they run again soon, and no failure is counted."""
        assert self._dispatcher is not None and self._recorder is not None
        by_queue: dict[QueueRef, list[InFlight]] = defaultdict(list)
        for f in flights:
            by_queue[f.claim.queue].append(f)
        for ref, group in by_queue.items():
            ok = await self._dispatcher.retry(
                ref, [(f.claim.id, f.claim.token, 0, "release") for f in group]
            )
            for f, accepted in zip(group, ok, strict=True):
                self.inflight.pop(f.claim.id, None)
                if accepted:
                    released = Execution(Outcome.RELEASED, error="worker shut down")
                    self._recorder.result(_attempt_result(f, TaskState.QUEUED, released))
        log.info("handed back unfinished tasks", extra={"count": len(flights)})

    # -- claiming -----------------------------------------------------------------------------

    async def _claim_loop(self) -> None:
        assert self._dispatcher is not None and self._waiter is not None
        idle_wait = 0.0
        # Claim in batches: with few free slots, wait briefly for more to free up.
        threshold = max(1, min(self.config.claim_batch, self.config.concurrency // 4))
        while not self.draining:
            free = self.config.concurrency - len(self.inflight)
            if free < threshold:
                self._slot_freed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._slot_freed.wait(), 0.005 if free else None)
                free = self.config.concurrency - len(self.inflight)
                if free <= 0:
                    continue
            got = 0
            next_due: int | None = None
            now_ms = 0
            for ref in self.config.queues:
                want = min(free - got, self.config.claim_batch)
                if want <= 0:
                    break
                try:
                    rate = await self._rate_limit(ref)
                    batch = await self._dispatcher.claim(
                        ref, want, lease_ms=self._lease_ms, worker=self.config.name, rate=rate
                    )
                except (aioredis.ConnectionError, aioredis.TimeoutError, OSError) as exc:
                    log.warning("claim failed; retrying", extra={"error": str(exc)})
                    await asyncio.sleep(1.0)
                    continue
                now_ms = batch.now_ms
                if batch.next_due_ms is not None:
                    next_due = min(next_due or batch.next_due_ms, batch.next_due_ms)
                for claim in batch.tasks:
                    self._start(claim)
                got += len(batch.tasks)
            if got:
                idle_wait = 0.0
                continue
            idle_wait = min(1.0, idle_wait * 2 or 0.05)
            timeout = idle_wait
            if next_due is not None and now_ms:
                timeout = max(0.005, min(timeout, (next_due - now_ms) / 1000))
            try:
                await self._waiter.wait_for_work(self.config.queues, timeout)
            except (aioredis.ConnectionError, aioredis.TimeoutError, OSError):
                await asyncio.sleep(timeout)

    def _max_retries(self, claim: ClaimedTask) -> int:
        """The task's own limit; else the handler's; else the queue default the task carries."""
        if not claim.blob.max_retries_set:
            spec = self.router.get(claim.handler)
            if spec is not None and spec.max_retries is not None:
                return spec.max_retries
        return claim.blob.max_retries

    async def _rate_limit(self, ref: QueueRef) -> RateLimit | None:
        """The queue's rate limit, re-read at most once a second."""
        assert self._dispatcher is not None
        now = time.monotonic()
        cached = self._rates.get(ref)
        if cached is None or now - cached[0] > 1.0:
            cached = (now, await self._dispatcher.rate_limit(ref))
            self._rates[ref] = cached
        return cached[1]

    def _start(self, claim: ClaimedTask) -> None:
        assert self._recorder is not None
        recorder = self._recorder
        self.claimed_total += 1
        ctx = TaskContext(
            task_id=claim.id,
            queue=claim.queue.name,
            namespace=claim.queue.namespace,
            handler=claim.handler,
            attempt=claim.attempt,
            max_retries=self._max_retries(claim),
            worker=self.config.name,
            logger=logging.LoggerAdapter(
                logging.getLogger("taskflow.task"),
                {"task_id": claim.id, "handler": claim.handler, "attempt": claim.attempt},
            ),
            _report=recorder.progress,
            failures=claim.failures,
        )
        flight = InFlight(claim, ctx)
        self.inflight[claim.id] = flight
        recorder.claim(claim.id, claim.attempt, self.config.name, utcnow())
        flight.task = asyncio.create_task(self._run_one(flight), name=f"task-{claim.id}")

    # -- running ------------------------------------------------------------------------------

    async def _run_one(self, flight: InFlight) -> None:
        claim = flight.claim
        spec = self.router.get(claim.handler)
        if spec is None:
            known = ", ".join(self.router.names()) or "none"
            execution = Execution(
                Outcome.FAILED,
                error=f"unknown handler {claim.handler!r}: this worker registers {known}",
                retryable=False,
            )
        else:
            timeout = claim.blob.timeout_seconds or spec.timeout
            try:
                execution = await execute(
                    spec, flight.ctx, claim.blob.payload_json, timeout, self._executor
                )
            except asyncio.CancelledError:
                if flight.lease_lost or (self.draining and not flight.cancel_requested):
                    raise
                execution = Execution(
                    Outcome.CANCELLED, error="cancelled while running", retryable=False
                )
        try:
            await self._finish(flight, execution)
        finally:
            self.inflight.pop(claim.id, None)
            self.finished_total += 1
            self._slot_freed.set()

    async def _finish(self, flight: InFlight, ex: Execution) -> None:
        assert self._dispatcher is not None
        claim = flight.claim
        if ex.outcome in (Outcome.SUCCEEDED, Outcome.CANCELLED):
            await self._end(flight, TaskState(ex.outcome.value), ex)
            return
        failures = claim.failures + 1
        if ex.retryable and failures <= self._max_retries(claim):
            delay = retry_delay(claim.blob.retry, failures)
            ok = await self._dispatcher.retry(
                claim.queue, [(claim.id, claim.token, int(delay * 1000), "retry")]
            )
            if ok[0] and self._recorder is not None:
                due = utcnow() + timedelta(seconds=delay)
                self._recorder.result(_attempt_result(flight, TaskState.RETRYING, ex, due))
            log.info(
                "task failed; retrying",
                extra={
                    "task_id": claim.id,
                    "attempt": claim.attempt,
                    "delay": round(delay, 3),
                    "error": ex.error,
                },
            )
            return
        await self._end(flight, TaskState.FAILED, ex)
        log.warning(
            "task failed",
            extra={"task_id": claim.id, "attempt": claim.attempt, "error": ex.error},
        )

    async def _end(self, flight: InFlight, state: TaskState, ex: Execution) -> None:
        """Ack in Redis (fenced by the claim's token), then record in PostgreSQL."""
        if await self._ack(flight.claim, state.value) and self._recorder is not None:
            self._recorder.result(_attempt_result(flight, state, ex))

    async def _ack(self, claim: ClaimedTask, outcome: str) -> bool:
        acker = self._ackers.get(claim.queue)
        if acker is None:
            dispatcher = self._dispatcher
            assert dispatcher is not None
            ref = claim.queue

            async def flush(items: Sequence[AckItem]) -> list[bool]:
                return await dispatcher.ack(ref, items)

            acker = self._ackers[claim.queue] = Coalescer(flush)
        accepted = (await acker.submit([(claim.id, claim.token, outcome)]))[0]
        if not accepted:
            log.warning("lease lost before the outcome was recorded", extra={"task_id": claim.id})
        return accepted

    # -- cancellation -------------------------------------------------------------------------

    async def _cancel_listener(self) -> None:
        """Stops handlers as soon as their task is cancelled (the heartbeat is the fallback)."""
        assert self._waiter is not None
        while True:
            try:
                async with self._waiter.redis.pubsub() as pubsub:
                    await pubsub.subscribe(
                        *(QueueKeys(r).cancel_channel for r in self.config.queues)
                    )
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            data = message["data"]
                            task_id = data.decode() if isinstance(data, bytes) else str(data)
                            flight = self.inflight.get(task_id)
                            if flight is not None:
                                self._request_cancel(flight)
            except (aioredis.ConnectionError, aioredis.TimeoutError, OSError) as exc:
                log.warning("cancel listener reconnecting", extra={"error": str(exc)})
                await asyncio.sleep(1.0)

    def _request_cancel(self, flight: InFlight) -> None:
        if flight.cancel_requested:
            return
        flight.cancel_requested = True
        flight.ctx._cancelled.set()
        if flight.task is not None:
            flight.task.cancel()

    # -- heartbeats ---------------------------------------------------------------------------

    async def _heartbeat_loop(self) -> None:
        assert self._dispatcher is not None
        interval = max(0.05, self.settings.lease_seconds / 3)
        while True:
            await asyncio.sleep(interval)
            by_queue: dict[QueueRef, list[InFlight]] = defaultdict(list)
            for f in list(self.inflight.values()):
                by_queue[f.claim.queue].append(f)
            for ref, group in by_queue.items():
                try:
                    statuses = await self._dispatcher.extend(
                        ref, [(f.claim.id, f.claim.token) for f in group], self._lease_ms
                    )
                except (aioredis.ConnectionError, aioredis.TimeoutError, OSError) as exc:
                    log.warning("heartbeat failed", extra={"error": str(exc)})
                    continue
                for f, status in zip(group, statuses, strict=True):
                    if status == "cancel":
                        self._request_cancel(f)
                    elif status == "lost" and not f.lease_lost:
                        f.lease_lost = True
                        f.ctx._cancelled.set()
                        log.warning("lease lost; abandoning task", extra={"task_id": f.claim.id})
                        if f.task is not None:
                            f.task.cancel()


def _attempt_result(
    flight: InFlight, state: TaskState, ex: Execution, next_run_at: datetime | None = None
) -> AttemptResult:
    return AttemptResult(
        task_id=flight.claim.id,
        attempt=flight.claim.attempt,
        worker=flight.ctx.worker,
        state=state,
        outcome=ex.outcome,
        finished_at=utcnow(),
        result_json=ex.result_json,
        error=ex.error,
        traceback=ex.traceback,
        next_run_at=next_run_at,
        count_failure=state in (TaskState.RETRYING, TaskState.FAILED),
    )
