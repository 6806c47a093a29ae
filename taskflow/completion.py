"""The completion path: claims, progress and attempt outcomes, PostgreSQL first, then Redis.

Everything a worker reports within one flush goes out together: one PostgreSQL round trip
(``TaskStore.record_batch``, pipelined, one implicit transaction), then one ``complete.lua``
call per queue. The order is the invariant the housekeeping sweep relies on: Redis forgets or
re-schedules a task only after PostgreSQL recorded why, so a task whose completion is in
flight is never dispatched again. A crash between the two steps leaves an expired lease that
housekeeping repairs from what PostgreSQL recorded (``taskflow.recovery``).

Nothing is dropped while a store is briefly unavailable: a batch is kept and written again
with backoff. A batch PostgreSQL refuses for its data is split until the refused rows are
found; a refused outcome is recorded as a failure that says why, and the rest goes through.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import TypeVar

import psycopg
import redis.exceptions

from taskflow.errors import STORE_ERRORS
from taskflow.keys import QueueRef
from taskflow.models import TERMINAL_STATES, AttemptResult, Outcome, TaskState
from taskflow.queue.dispatch import Dispatcher, RedisAction
from taskflow.store.tasks import BatchRecord, Claim, Progress, RecordedResult, TaskStore
from taskflow.telemetry.metrics import process_metrics
from taskflow.values import clean_text
from taskflow.waiting import cancel_and_wait

log = logging.getLogger("taskflow.completion")

#: Errors that say the batch's data was refused (not that PostgreSQL is unreachable).
DATA_ERRORS: tuple[type[BaseException], ...] = (
    psycopg.DataError,
    psycopg.IntegrityError,
    ValueError,
    UnicodeError,
)

#: First and longest wait between two tries of a write that failed for want of a store.
BACKOFF_INITIAL = 0.05
BACKOFF_MAX = 2.0


@dataclass(frozen=True)
class Completed:
    """What became of an attempt's outcome."""

    recorded: bool  # PostgreSQL holds this attempt's outcome as the attempt's own
    state: TaskState | None  # the task's state in PostgreSQL now (None: not known)
    redis: bool  # Redis ended the claim accordingly (False: someone else holds the lease)


@dataclass(eq=False)
class _End:
    queue: QueueRef
    result: AttemptResult
    delay_ms: int
    done: asyncio.Future[Completed]


class CompletionRecorder:
    """Group commit of one worker process's reports. ``on_already_ended(task_id)`` is called
    when a claim's record finds its task already ended (cancelled before the claim was
    recorded, or a duplicate delivery): its handler must stop."""

    def __init__(
        self,
        store: TaskStore,
        dispatcher: Dispatcher,
        *,
        linger: float = 0.002,
        on_already_ended: Callable[[str], None] | None = None,
    ) -> None:
        self._store = store
        self._dispatcher = dispatcher
        self.linger = linger
        self._on_already_ended = on_already_ended
        self._claims: list[Claim] = []
        self._progress: dict[str, Progress] = {}
        self._ends: list[_End] = []
        self._in_flight: set[_End] = set()  # taken into a batch, not yet applied in Redis
        self._writing = False
        self._recorded: asyncio.Queue[tuple[list[_End], BatchRecord]] = asyncio.Queue()
        self._wake = asyncio.Event()
        self._settled = asyncio.Event()
        self._settled.set()
        self._tasks: list[asyncio.Task[None]] = []
        self._metrics = process_metrics()

    def start(self) -> None:
        """Two stages: PostgreSQL writes, and Redis updates of what was written. While Redis
        applies one batch, the next one is already being written."""
        self._tasks = [
            asyncio.create_task(self._write_loop(), name="completion-write"),
            asyncio.create_task(self._apply_loop(), name="completion-apply"),
        ]

    # -- reports ------------------------------------------------------------------------------

    def claimed(self, claim: Claim) -> None:
        self._claims.append(claim)
        self._poke()

    def progress(self, item: Progress) -> None:
        self._progress[item.task_id] = item
        self._poke()

    def end(
        self, queue: QueueRef, result: AttemptResult, delay_ms: int = 0
    ) -> asyncio.Future[Completed]:
        """Record ``result``, then end its claim in Redis; the future tells what came of it."""
        done: asyncio.Future[Completed] = asyncio.get_running_loop().create_future()
        self._ends.append(_End(queue, result, delay_ms, done))
        self._poke()
        return done

    @property
    def pending(self) -> int:
        """Reports not yet written to PostgreSQL."""
        return len(self._claims) + len(self._progress) + len(self._ends)

    def _busy(self) -> bool:
        return bool(self.pending or self._writing or self._in_flight)

    def _poke(self) -> None:
        self._settled.clear()
        self._wake.set()

    def _check_settled(self) -> None:
        if not self._busy():
            self._settled.set()

    async def flushed(self) -> None:
        """Wait until everything reported so far is recorded and applied."""
        while self._busy():
            self._wake.set()
            self._settled.clear()
            await self._settled.wait()

    async def close(self, timeout: float) -> int:
        """Flush for at most ``timeout`` seconds, then stop. Returns the reports left
        unrecorded (their leases expire and housekeeping repairs them from PostgreSQL)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.flushed(), timeout)
        await cancel_and_wait(*self._tasks)
        unfinished = [*self._in_flight, *self._ends]
        for end in unfinished:
            if not end.done.done():
                end.done.set_result(Completed(False, None, False))
        left = len(unfinished) + len(self._claims)
        if left:
            log.warning(
                "stopped with %d report(s) unrecorded; their leases expire and housekeeping "
                "repairs them from PostgreSQL",
                left,
            )
        return left

    # -- the two stages -----------------------------------------------------------------------

    async def _write_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await asyncio.sleep(self.linger)  # let a few more reports join this batch
            while self.pending:
                claims, self._claims = self._claims, []
                progress, self._progress = list(self._progress.values()), {}
                ends, self._ends = self._ends, []
                self._in_flight.update(ends)
                self._writing = True
                try:
                    record = await self._record(claims, progress, [e.result for e in ends])
                finally:
                    self._writing = False
                self._metrics.recorded(e.result.finished_at for e in ends)
                if self._on_already_ended is not None:
                    for task_id, _ in record.already_ended:
                        self._on_already_ended(task_id)
                if ends or record.settled:
                    self._recorded.put_nowait((ends, record))
            self._check_settled()

    async def _apply_loop(self) -> None:
        while True:
            batches = [await self._recorded.get()]
            while not self._recorded.empty():
                batches.append(self._recorded.get_nowait())
            ends = [end for some, _ in batches for end in some]
            record = BatchRecord()
            for _, part in batches:
                record.results.update(part.results)
                record.settled.merge(part.settled)
            await self._apply(ends, record)
            self._in_flight.difference_update(ends)
            self._check_settled()

    async def _record(
        self, claims: list[Claim], progress: list[Progress], results: list[AttemptResult]
    ) -> BatchRecord:
        """Write a batch, waiting out an unavailable PostgreSQL."""
        backoff = BACKOFF_INITIAL
        while True:
            try:
                return await self._record_split(claims, progress, results)
            except STORE_ERRORS as exc:
                log.warning(
                    "recording %d item(s) failed; retrying in %.2fs: %s",
                    len(claims) + len(results),
                    backoff,
                    exc,
                )
            except psycopg.Error as exc:
                log.error("recording %d item(s) failed; retrying: %s", len(results), exc)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX)

    async def _record_split(
        self, claims: list[Claim], progress: list[Progress], results: list[AttemptResult]
    ) -> BatchRecord:
        try:
            return await self._store.record_batch(claims, results, progress)
        except DATA_ERRORS as exc:
            if len(claims) + len(progress) + len(results) == 1:
                return await self._record_refused(claims, progress, results, exc)
            log.warning("a batch of %d item(s) was refused; splitting it: %s", len(results), exc)
        # Claims and progress first (a result never goes before its claim), then halves.
        record = BatchRecord()
        if claims or progress:
            if results:
                record = await self._record_split(claims, progress, [])
            else:
                for some_claims in _halves(claims):
                    part = await self._record_split(some_claims, [], [])
                    record.already_ended |= part.already_ended
                for some_progress in _halves(progress):
                    await self._record_split([], some_progress, [])
                return record
        for some_results in _halves(results):
            part = await self._record_split([], [], some_results)
            record.results.update(part.results)
        return record

    async def _record_refused(
        self,
        claims: list[Claim],
        progress: list[Progress],
        results: list[AttemptResult],
        exc: BaseException,
    ) -> BatchRecord:
        """One item PostgreSQL refuses. A result is recorded as a failure that says why."""
        reason = clean_text(str(exc).strip().splitlines()[0] if str(exc).strip() else "", 500)
        if progress:
            log.warning("progress of task %s refused and dropped: %s", progress[0].task_id, reason)
            return BatchRecord()
        if claims:
            log.error("claim of task %s refused: %s", claims[0].task_id, reason)
            return BatchRecord()
        bad = results[0]
        log.error("outcome of task %s refused, recorded as a failure: %s", bad.task_id, reason)
        failure = replace(
            bad,
            state=TaskState.FAILED,
            outcome=Outcome.FAILED,
            result_json=None,
            traceback=None,
            next_run_at=None,
            count_failure=True,
            error=f"the attempt's outcome could not be stored: {reason}",
        )
        try:
            return await self._store.record_batch([], [failure])
        except DATA_ERRORS as again:
            log.error("outcome of task %s cannot be recorded at all: %s", bad.task_id, again)
            return BatchRecord({(bad.task_id, bad.attempt): RecordedResult(False, None)})

    async def _apply(self, ends: Sequence[_End], record: BatchRecord) -> None:
        """Make Redis follow what was recorded: released DAG steps dispatched, withdrawn ones
        cancelled, then the claims ended (one script call per queue)."""
        settled = record.settled
        if settled:
            await self._redis(
                f"dispatching {len(settled.released)} released step(s)",
                lambda: self._dispatcher.follow_up(settled.released, settled.withdrawn),
            )
        by_queue: dict[QueueRef, list[tuple[_End, RedisAction | None]]] = defaultdict(list)
        for end in ends:
            got = record.results.get((end.result.task_id, end.result.attempt))
            by_queue[end.queue].append((end, _redis_action(end, got)))
        for ref, group in by_queue.items():
            actions = [a for _, a in group if a is not None]
            applied: Iterator[bool] = iter([])
            if actions:
                applied = iter(
                    await self._redis(
                        f"ending {len(actions)} claim(s)",
                        partial(self._dispatcher.complete, ref, actions),
                    )
                )
            for end, action in group:
                got = record.results.get((end.result.task_id, end.result.attempt))
                done = next(applied) if action is not None else False
                if not end.done.done():
                    end.done.set_result(
                        Completed(got.won if got else False, got.state if got else None, done)
                    )

    async def _redis(self, what: str, call: Callable[[], Awaitable[R]]) -> R:
        """``call`` until it succeeds: what PostgreSQL recorded must reach Redis."""
        backoff = BACKOFF_INITIAL
        while True:
            try:
                return await call()
            except STORE_ERRORS as exc:
                log.warning("%s in redis failed; retrying in %.2fs: %s", what, backoff, exc)
            except redis.exceptions.RedisError as exc:
                log.error("%s in redis failed; retrying: %s", what, exc)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX)


def _redis_action(end: _End, got: RecordedResult | None) -> RedisAction | None:
    """What Redis must do once PostgreSQL recorded (or refused) an attempt's outcome."""
    r = end.result
    if got is None:
        return None
    if got.state in TERMINAL_STATES or (got.state is None and got.won):
        # ended, by this attempt or before it (cancelled, a duplicate delivery): forget it
        return RedisAction(r.task_id, r.token, "ack", got.state.value if got.state else "")
    if not got.won:
        return None  # housekeeping ended this attempt (its lease expired): it owns the claim
    if r.state is TaskState.RETRYING:
        return RedisAction(r.task_id, r.token, "retry", str(end.delay_ms))
    if r.state is TaskState.QUEUED:
        return RedisAction(r.task_id, r.token, "release")
    return None


T = TypeVar("T")
R = TypeVar("R")


def _halves(items: list[T]) -> list[list[T]]:
    if len(items) <= 1:
        return [items] if items else []
    mid = len(items) // 2
    return [items[:mid], items[mid:]]
