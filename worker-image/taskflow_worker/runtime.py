"""The worker process: claim in batches, run handlers concurrently, report how they end.

Every transition of a task goes through the engine's ``WorkerSession`` (claims, heartbeats,
outcomes recorded in PostgreSQL first, then Redis); this module only runs handlers. A slot is
taken from the claim until the handler has really stopped: a sync handler that ignores a
cancel or a timeout keeps its thread, and the slot, until it returns, so the worker never
claims more than it can start at once. Nor does it hold more than ``HELD_PER_SLOT`` claims
per slot counting those whose outcome is still being recorded: when recording lags (a slow
PostgreSQL), the claim loop waits instead of piling up claims in memory. SIGTERM drains: no
new claims, in-flight tasks get ``drain_grace`` seconds, the rest are handed back unrun
without counting a failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import logging
import os
import socket
import threading
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from taskflow.config import Settings
from taskflow.errors import STORE_ERRORS
from taskflow.keys import QueueRef
from taskflow.models import ClaimedTask, Outcome, WorkerStatus, utcnow
from taskflow.telemetry.metrics import process_metrics
from taskflow.waiting import cancel_and_wait
from taskflow.worker_session import AttemptEnd, LeaseEvents, WorkerSession
from taskflow_worker.context import PermanentError, TaskContext
from taskflow_worker.router import HandlerSpec, Router
from taskflow_worker.threads import HandlerThreads
from taskflow_worker.tracing import traced

log = logging.getLogger("taskflow.worker")

#: How long a drained worker waits for its last outcomes to be recorded before it exits.
FLUSH_TIMEOUT = 5.0
#: How long a handler asked to stop (cancel, timeout) may take before its slot is counted as
#: held by an abandoned handler.
STOP_GRACE = 1.0
#: Claims held per slot at most, running or with their outcome still being recorded.
HELD_PER_SLOT = 4


@dataclass
class WorkerConfig:
    queues: Sequence[QueueRef]
    concurrency: int = 10
    name: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    drain_grace: float = 25.0
    claim_batch: int = 100


@dataclass
class InFlight:
    """A claim from the moment it is taken until its handler has really stopped."""

    claim: ClaimedTask
    ctx: TaskContext
    task: asyncio.Task[None] | None = None
    handler: asyncio.Future[Any] | None = None  # the handler's coroutine task or thread call
    stop_reason: str = ""  # cancel | lost | ended | drain (empty: not asked to stop)
    started: float = field(default_factory=time.monotonic)
    abandoned: bool = False  # its outcome is reported; the handler has not stopped yet
    #: Resolved when the handler ends, its timeout passes or it is asked to stop.
    wake: asyncio.Future[None] | None = None

    @property
    def stop_requested(self) -> bool:
        return bool(self.stop_reason)

    def request_stop(self, reason: str) -> None:
        if not self.stop_reason:
            self.stop_reason = reason
            self.ctx._cancel_requested = True
            _resolve(self.wake)


def _resolve(wake: asyncio.Future[None] | None, *_: Any) -> None:
    if wake is not None and not wake.done():
        wake.set_result(None)


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
        self.started_at = utcnow()
        self._slot_freed = asyncio.Event()
        self._threads = HandlerThreads(config.concurrency)
        self._session: WorkerSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0

    def status(self) -> WorkerStatus:
        """What this worker announces with its heartbeat (dashboards, ``taskflow top``)."""
        return WorkerStatus(
            name=self.config.name,
            queues=tuple(q.qualified for q in self.config.queues),
            concurrency=self.config.concurrency,
            in_flight=len(self.inflight),
            abandoned=self.abandoned,
            claimed=self.claimed_total,
            finished=self.finished_total,
            started_at=self.started_at,
            seen_at=utcnow(),
        )

    @property
    def max_held(self) -> int:
        """Claims this worker holds at most: running, or ended and not yet recorded."""
        return HELD_PER_SLOT * self.config.concurrency

    def _free_slots(self) -> int:
        """Claims that may be taken now: free slots, less any excess of claims whose outcome
        is still on its way to PostgreSQL and Redis (backpressure from the recording)."""
        held = self._session.held if self._session is not None else 0
        return min(self.config.concurrency - len(self.inflight), self.max_held - held)

    @property
    def abandoned(self) -> int:
        """Handlers whose task is over (timed out, cancelled, lease lost) but still running."""
        return sum(1 for f in self.inflight.values() if f.abandoned)

    # -- lifecycle ----------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Work until ``stop`` is set, then drain."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        events = LeaseEvents(
            cancel=partial(self._stop_flight, reason="cancel"),
            lost=partial(self._stop_flight, reason="lost"),
            ended=partial(self._stop_flight, reason="ended"),
        )
        session = self._session = await WorkerSession.open(self.settings, self.config.name, events)
        try:
            await session.register(self.config.queues)
        except BaseException:
            await session.close(0)
            raise
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
        heart = asyncio.create_task(session.heartbeat_forever(self.status), name="heartbeat")
        listener = asyncio.create_task(
            session.watch_cancellations(self.config.queues), name="cancel-listener"
        )
        try:
            await stop.wait()
        finally:
            self.draining = True
            await cancel_and_wait(claimer)
            await self._drain()
            await session.close(FLUSH_TIMEOUT)
            await cancel_and_wait(heart, listener)
            self._threads.shutdown()
            if self.abandoned:
                log.warning(
                    "stopped with handlers still running (they ignored cancellation)",
                    extra={"count": self.abandoned},
                )
            log.info("worker stopped", extra={"worker": self.config.name})

    async def _drain(self) -> None:
        running = [f for f in self.inflight.values() if not f.abandoned and f.task is not None]
        if running:
            log.info(
                "draining", extra={"in_flight": len(running), "grace": self.config.drain_grace}
            )
            await asyncio.wait([f.task for f in running if f.task], timeout=self.config.drain_grace)
        leftovers = [f for f in self.inflight.values() if not f.abandoned and f.task is not None]
        for f in leftovers:
            f.request_stop("drain")
        if leftovers:
            await asyncio.gather(*(f.task for f in leftovers if f.task), return_exceptions=True)
            log.info("handed back unfinished tasks", extra={"count": len(leftovers)})

    # -- claiming -----------------------------------------------------------------------------

    async def _claim_loop(self) -> None:
        session = self._session
        assert session is not None
        idle_wait = 0.0
        # Claim in batches: with few free slots, wait briefly for more to free up.
        threshold = max(1, min(self.config.claim_batch, self.config.concurrency // 4))
        while not self.draining:
            free = self._free_slots()
            if free < threshold:
                self._slot_freed.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.005 if free > 0 else None):
                        await self._slot_freed.wait()
                free = self._free_slots()
                if free <= 0:
                    continue
            got = 0
            next_due: int | None = None
            for ref in self.config.queues:
                want = min(free - got, self.config.claim_batch)
                if want <= 0:
                    break
                try:
                    tasks, due = await session.claim(ref, want)
                except STORE_ERRORS as exc:
                    log.warning("claim failed; retrying", extra={"error": str(exc)})
                    await asyncio.sleep(1.0)
                    continue
                except Exception:
                    log.exception("claim failed; retrying")
                    await asyncio.sleep(1.0)
                    continue
                if due is not None:
                    next_due = due if next_due is None else min(next_due, due)
                for claim in tasks:
                    self._start(claim)
                got += len(tasks)
            if got:
                idle_wait = 0.0
                continue
            idle_wait = min(1.0, idle_wait * 2 or 0.05)
            timeout = idle_wait if next_due is None else max(0.005, min(idle_wait, next_due / 1000))
            try:
                await session.wait_for_work(self.config.queues, timeout)
            except STORE_ERRORS:
                await asyncio.sleep(timeout)

    def _max_retries(self, claim: ClaimedTask) -> int:
        """The task's own limit; else the handler's; else the queue default the task carries."""
        if not claim.blob.max_retries_set:
            spec = self.router.get(claim.handler)
            if spec is not None and spec.max_retries is not None:
                return spec.max_retries
        return claim.blob.max_retries

    def _start(self, claim: ClaimedTask) -> None:
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
            _report=partial(self._progress, claim),
            failures=claim.failures,
            run_id=claim.blob.run_id,
            step=claim.blob.step,
            parents=claim.parents,
        )
        flight = InFlight(claim, ctx)
        self.inflight[claim.id] = flight
        flight.task = asyncio.create_task(self._run_one(flight), name=f"task-{claim.id}")

    def _progress(
        self, claim: ClaimedTask, task_id: str, fraction: float, message: str | None
    ) -> None:
        """``ctx.progress`` from a handler: async ones call it on the loop, sync ones from
        their thread."""
        session, loop = self._session, self._loop
        if session is None or loop is None:
            return
        if threading.get_ident() == self._loop_thread:
            session.progress(claim, fraction, message)
        else:
            loop.call_soon_threadsafe(session.progress, claim, fraction, message)

    def _stop_flight(self, task_id: str, *, reason: str) -> None:
        flight = self.inflight.get(task_id)
        if flight is not None and not flight.abandoned:
            flight.request_stop(reason)

    # -- running ------------------------------------------------------------------------------

    async def _run_one(self, flight: InFlight) -> None:
        session = self._session
        assert session is not None
        claim = flight.claim
        try:
            end = await traced(claim, self._execute(flight))
        except Exception as exc:  # a defect of the runtime itself: fail the attempt, loudly
            log.exception("running task %s failed", claim.id)
            end = AttemptEnd(Outcome.FAILED, error=f"worker error: {exc!r}", retryable=True)
        process_metrics().ran(claim, end.outcome, time.monotonic() - flight.started)
        reason = flight.stop_reason
        recorded: asyncio.Future[Any] | None = None
        if reason == "drain":
            recorded = session.release(claim, "the worker shut down before the handler finished")
        elif reason == "lost":
            session.abandon(claim)  # housekeeping ended this attempt; it owns the task now
        elif reason == "ended":
            # the task had ended before this claim: the record refuses this attempt's outcome
            # and the claim is dropped in Redis
            recorded = session.finish(
                claim, AttemptEnd(Outcome.CANCELLED, retryable=False), max_retries=0
            )
        else:
            recorded = session.finish(claim, end, max_retries=flight.ctx.max_retries)
            if end.outcome is Outcome.FAILED or end.outcome is Outcome.TIMEOUT:
                log.info(
                    "task failed",
                    extra={"task_id": claim.id, "attempt": claim.attempt, "error": end.error},
                )
        if recorded is not None:
            # the claim stops counting against ``max_held`` once recorded: wake the claim loop
            recorded.add_done_callback(lambda _: self._slot_freed.set())
        self.finished_total += 1
        if flight.handler is not None and not flight.handler.done():
            await asyncio.wait({flight.handler}, timeout=STOP_GRACE)
        if flight.handler is not None and not flight.handler.done():
            flight.abandoned = True
            log.warning(
                "handler did not stop when asked; its slot stays taken until it returns",
                extra={
                    "task_id": claim.id,
                    "handler": claim.handler,
                    "reason": reason or "timeout",
                },
            )
            flight.handler.add_done_callback(lambda _: self._free(flight))
        else:
            self._free(flight)

    def _free(self, flight: InFlight) -> None:
        if flight.abandoned:
            log.info(
                "abandoned handler returned",
                extra={
                    "task_id": flight.claim.id,
                    "seconds": round(time.monotonic() - flight.started, 3),
                },
            )
        if self.inflight.get(flight.claim.id) is flight:
            del self.inflight[flight.claim.id]
        self._slot_freed.set()

    async def _execute(self, flight: InFlight) -> AttemptEnd:
        """Run the handler until it ends, times out or is asked to stop; classify the end."""
        claim = flight.claim
        spec = self.router.get(claim.handler)
        if spec is None:
            known = ", ".join(self.router.names()) or "none"
            return AttemptEnd(
                Outcome.FAILED,
                error=f"unknown handler {claim.handler!r}: this worker registers {known}",
                retryable=False,
            )
        try:
            payload = json.loads(claim.blob.payload_json)
        except ValueError as exc:
            return AttemptEnd(Outcome.FAILED, error=f"payload is not JSON: {exc}", retryable=False)
        timeout = claim.blob.timeout_seconds or spec.timeout or None
        handler = flight.handler = self._call(spec, flight.ctx, payload)
        if not handler.done() and not flight.stop_requested:
            # One future that the handler's end, its timeout or a stop request resolves:
            # no helper task and no asyncio.wait per task.
            loop = asyncio.get_running_loop()
            wake = flight.wake = loop.create_future()
            resolve = partial(_resolve, wake)
            handler.add_done_callback(resolve)
            timer = loop.call_later(timeout, resolve) if timeout else None
            try:
                await wake
            finally:
                flight.wake = None
                handler.remove_done_callback(resolve)
                if timer is not None:
                    timer.cancel()
        if handler.done():
            return _classify(handler)
        flight.ctx._cancel_requested = True
        if isinstance(handler, asyncio.Task):
            handler.cancel()
        if flight.stop_requested:
            return AttemptEnd(Outcome.CANCELLED, error="cancelled while running", retryable=False)
        return AttemptEnd(Outcome.TIMEOUT, error=f"timed out after {timeout:g}s")

    def _call(self, spec: HandlerSpec, ctx: TaskContext, payload: Any) -> asyncio.Future[Any]:
        if spec.is_async:
            return asyncio.ensure_future(spec.fn(ctx, payload))
        run = partial(contextvars.copy_context().run, spec.fn, ctx, payload)
        return asyncio.wrap_future(self._threads.submit(run))


def _classify(handler: asyncio.Future[Any]) -> AttemptEnd:
    if handler.cancelled():
        return AttemptEnd(Outcome.CANCELLED, error="cancelled while running", retryable=False)
    exc = handler.exception()
    if exc is None:
        return AttemptEnd(Outcome.SUCCEEDED, result=handler.result())
    text = "".join(traceback.format_exception(exc))
    error = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, PermanentError):
        return AttemptEnd(Outcome.FAILED, error=error, traceback=text, retryable=False)
    if isinstance(exc, asyncio.CancelledError):
        return AttemptEnd(Outcome.CANCELLED, error="cancelled while running", retryable=False)
    return AttemptEnd(Outcome.FAILED, error=error, traceback=text)
