"""The engine: one object the API server, housekeeping and the operator share.

Every transition of a task has one owner in this package, and each writes PostgreSQL before
Redis so that a crash between the two is repaired from PostgreSQL (``docs/architecture.md``):

* here: submit, cancel, replay, queue settings, and the reads;
* ``taskflow.worker_session``: claim, progress, heartbeat, the end of an attempt (ack, retry,
  fail), the hand-back on shutdown — for worker processes;
* ``taskflow.recovery``: expired leases, tasks Redis does not know, the index rebuild — for
  housekeeping.

Submission commits to PostgreSQL first (the client is told "accepted" only after the
commit), then makes the tasks dispatchable in Redis. A task whose Redis step did not
happen is found by housekeeping (``taskflow.housekeeping``) and dispatched then.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from taskflow.batching import Coalescer
from taskflow.config import Settings
from taskflow.errors import (
    STORE_ERRORS,
    InvalidArgument,
    NotFound,
    PayloadTooLarge,
    Unavailable,
    unavailable,
)
from taskflow.keys import QueueRef
from taskflow.models import (
    TRACEPARENT_LABEL,
    DispatchBlob,
    QueueConfig,
    QueueStats,
    RateLimit,
    RetryPolicy,
    SubmitResult,
    TaskRecord,
    TaskState,
    TaskSubmission,
    WorkerStatus,
    new_task_id,
    parse_task_id,
    utcnow,
)
from taskflow.queue.dispatch import Dispatcher, EnqueueItem, due_ms, enqueue_item
from taskflow.store.queues import QueueStore
from taskflow.store.tasks import NewTask, TaskStore

log = logging.getLogger("taskflow.engine")

#: The errors a store raises when it cannot be reached (``taskflow.errors.STORE_ERRORS``).
UNAVAILABLE_ERRORS = STORE_ERRORS


@dataclass(frozen=True)
class QueueDefaults:
    """What a task of the queue gets for the fields it leaves unset."""

    max_retries: int
    retry: RetryPolicy
    timeout_seconds: float


#: How long a process trusts its copy of a queue's settings.
QUEUE_CONFIG_TTL = 5.0


def new_enqueue_item(t: NewTask) -> EnqueueItem:
    """How a task just submitted is handed to Redis."""
    s = t.spec
    return EnqueueItem(
        id=t.id,
        blob=DispatchBlob(
            id=t.id,
            handler=s.handler,
            payload_json=s.payload_json,
            max_retries=t.max_retries,
            timeout_seconds=t.timeout_seconds,
            retry=t.retry,
            max_retries_set=t.max_retries_set,
            run_id=t.run_id,
            step=t.step,
            due_ms=due_ms(t.run_at) if t.state is TaskState.SCHEDULED else 0,
            traceparent=s.labels.get(TRACEPARENT_LABEL),
        ),
        priority=s.priority,
        due_ms=due_ms(t.run_at) if t.state is TaskState.SCHEDULED else 0,
        concurrency_key=s.concurrency_key,
        concurrency_limit=s.concurrency_limit,
    )


class Engine:
    def __init__(self, settings: Settings, store: TaskStore, dispatcher: Dispatcher) -> None:
        self.settings = settings
        self.store = store
        self.dispatcher = dispatcher
        self.queue_store = QueueStore(store.pool)
        self._queue_configs: dict[QueueRef, tuple[float, QueueConfig]] = {}
        self._submits: Coalescer[TaskSubmission, SubmitResult] = Coalescer(self._submit_batch)

    @classmethod
    async def connect(cls, settings: Settings) -> Engine:
        try:
            store = await TaskStore.open(settings)
        except Exception as exc:
            raise Unavailable(f"PostgreSQL at {_redact(settings.database_url)}: {exc}") from exc
        return cls(settings, store, Dispatcher.connect(settings.redis_url))

    async def close(self) -> None:
        await self.store.close()
        await self.dispatcher.redis.aclose()

    async def check_ready(self) -> None:
        """Raise ``Unavailable`` unless both PostgreSQL and Redis answer."""
        with unavailable("PostgreSQL"):
            await self.store.ping()
        with unavailable("Redis"):
            await self.dispatcher.redis.ping()

    # -- submission ---------------------------------------------------------------------------

    async def defaults_for(self, ref: QueueRef) -> QueueDefaults:
        """The queue's settings (``configure_queue``) over the global ones; cached briefly."""
        now = time.monotonic()
        cached = self._queue_configs.get(ref)
        if cached is None or now - cached[0] > QUEUE_CONFIG_TTL:
            with unavailable("PostgreSQL"):
                config = await self.queue_store.get(ref) or QueueConfig()
            cached = (now, config)
            self._queue_configs[ref] = cached
        config = cached[1]
        r = self.settings.retry
        return QueueDefaults(
            max_retries=(
                self.settings.default_max_retries
                if config.max_retries is None
                else config.max_retries
            ),
            retry=config.retry
            or RetryPolicy(
                initial_seconds=r.initial_seconds,
                multiplier=r.multiplier,
                max_seconds=r.max_seconds,
            ),
            timeout_seconds=config.timeout_seconds or 0.0,
        )

    async def configure_queue(self, ref: QueueRef, config: QueueConfig) -> None:
        """Store a queue's defaults and rate limit (PostgreSQL, with the rate copied to Redis)."""
        with unavailable("PostgreSQL"):
            await self.queue_store.upsert(ref, config)
        self._queue_configs[ref] = (time.monotonic(), config)
        with unavailable("Redis"):
            await self.dispatcher.register_queue(ref)
            await self.dispatcher.set_rate_limit(ref, config.rate)

    def check_payload(self, spec: TaskSubmission, field: str) -> None:
        size = len(spec.payload_json.encode())
        if size > self.settings.max_payload_bytes:
            raise PayloadTooLarge(field, size, self.settings.max_payload_bytes)

    async def submit(self, specs: Sequence[TaskSubmission]) -> list[SubmitResult]:
        """Record tasks durably, then dispatch them. Concurrent calls share one commit."""
        if not specs:
            raise InvalidArgument("tasks", "at least one task is required")
        return list(await self._submits.submit(specs))

    async def _submit_batch(self, specs: Sequence[TaskSubmission]) -> list[SubmitResult]:
        now = utcnow()
        refs = [spec.queue_ref for spec in specs]  # built once per task: they are hashed twice
        defaults = await self.defaults_of(refs)
        new = [self.new_task(s, defaults[ref], now) for s, ref in zip(specs, refs, strict=True)]
        with unavailable("PostgreSQL"):
            results = await self.store.insert(new)
        created = {r.task_id for r in results if r.created}
        await self.dispatch_new([t for t in new if t.id in created])
        return results

    async def defaults_of(self, refs: Iterable[QueueRef]) -> dict[QueueRef, QueueDefaults]:
        """The settings of each queue of ``refs`` (a ref may repeat)."""
        return {ref: await self.defaults_for(ref) for ref in set(refs)}

    def new_task(
        self,
        spec: TaskSubmission,
        d: QueueDefaults,
        now: datetime,
        *,
        run_id: str | None = None,
        step: str | None = None,
        parents: int = 0,
        task_id: str | None = None,
    ) -> NewTask:
        """A submission with its id, its queue's defaults applied and its first state (a DAG
        step with parents ``waiting``)."""
        due = spec.due_at(now)
        if parents:
            state = TaskState.WAITING
        else:
            state = TaskState.SCHEDULED if due > now else TaskState.QUEUED
        return NewTask(
            id=task_id or new_task_id(),
            spec=spec,
            state=state,
            created_at=now,
            run_at=due,
            max_retries=d.max_retries if spec.max_retries is None else spec.max_retries,
            retry=spec.retry or d.retry,
            max_retries_set=spec.max_retries is not None,
            timeout_seconds=spec.timeout_seconds or d.timeout_seconds,
            run_id=run_id,
            step=step,
            pending_parents=parents,
        )

    async def dispatch_new(self, tasks: Sequence[NewTask]) -> None:
        """Hand tasks just recorded to Redis (``waiting`` DAG steps stay out)."""
        by_queue: dict[tuple[str, str], list[EnqueueItem]] = defaultdict(list)
        for t in tasks:
            if t.state is not TaskState.WAITING:
                by_queue[t.spec.namespace, t.spec.queue].append(new_enqueue_item(t))
        for (namespace, name), items in by_queue.items():
            ref = QueueRef(namespace, name)
            try:
                await self.dispatcher.enqueue(ref, items)
            except STORE_ERRORS as exc:
                # Already durable: housekeeping dispatches them once Redis is back.
                log.warning(
                    "redis unavailable; %d task(s) of %s wait for the sweep: %s",
                    len(items),
                    ref,
                    exc,
                )

    # -- reads --------------------------------------------------------------------------------

    async def get(self, task_id: str, *, with_attempts: bool = False) -> TaskRecord:
        tid = parse_task_id(task_id)
        with unavailable("PostgreSQL"):
            task = await self.store.get(tid, with_attempts=with_attempts)
        if task is None:
            raise NotFound(f"task {tid} not found")
        return task

    async def get_many(self, task_ids: Sequence[str]) -> dict[str, TaskRecord]:
        """The records of those ids that exist, by id: one query whatever the count.

        Raises ``InvalidArgument`` naming ``task_ids[i]`` for an id that is not a UUID."""
        ids = [parse_task_id(t, f"task_ids[{i}]") for i, t in enumerate(task_ids)]
        if not ids:
            return {}
        with unavailable("PostgreSQL"):
            records = await self.store.get_many(ids)
        return {r.id: r for r in records}

    async def get_by_idempotency_keys(
        self, keys: Sequence[tuple[str, str, str]]
    ) -> dict[tuple[str, str, str], TaskRecord]:
        """The tasks submitted with these ``(namespace, queue, idempotency_key)``, by key."""
        if not keys:
            return {}
        with unavailable("PostgreSQL"):
            records = await self.store.get_by_idempotency_keys(keys)
        return {(r.namespace, r.queue, r.idempotency_key or ""): r for r in records}

    async def list_tasks(
        self,
        *,
        namespace: str,
        queue: str | None,
        states: Sequence[str],
        page_size: int,
        page_token: str | None,
    ) -> tuple[list[TaskRecord], str | None]:
        for i, s in enumerate(states):
            if s not in TaskState.__members__.values():
                raise InvalidArgument(
                    f"states[{i}]", f"unknown state {s!r}; one of {', '.join(TaskState)}"
                )
        if page_size < 0 or page_size > 1000:
            raise InvalidArgument("page_size", "must be between 1 and 1000 (0 = 100)")
        size = page_size or 100
        before = parse_task_id(page_token, "page_token") if page_token else None
        with unavailable("PostgreSQL"):
            rows = await self.store.list_tasks(
                namespace=namespace or "default",
                queue=queue or None,
                states=list(states),
                limit=size + 1,
                before_id=before,
            )
        page = _bounded(rows[:size], self.settings.max_page_bytes)
        more = len(rows) > len(page)
        return page, (page[-1].id if more else None)

    async def queue_stats(self, ref: QueueRef) -> QueueStats:
        now_ms = int(utcnow().timestamp() * 1000)
        with unavailable("Redis"):
            counts = await self.dispatcher.counts(ref, now_ms)
        return QueueStats(
            namespace=ref.namespace,
            queue=ref.name,
            ready=counts["ready"],
            scheduled=counts["scheduled"],
            due_delayed=counts["due_delayed"],
            running=counts["running"],
            succeeded=counts["succeeded"],
            failed=counts["failed"],
            cancelled=counts["cancelled"],
            dead_letters=max(0, counts["failed"] - counts["replayed"]),
        )

    async def list_queues(self, namespace: str | None) -> list[QueueStats]:
        with unavailable("Redis"):
            refs = await self.dispatcher.queues()
        return [
            await self.queue_stats(r) for r in refs if not namespace or r.namespace == namespace
        ]

    async def workers(self) -> list[WorkerStatus]:
        """Workers that announced themselves; ``seen_at`` older than a lease means gone."""
        with unavailable("Redis"):
            return await self.dispatcher.workers()

    # -- control ------------------------------------------------------------------------------

    async def cancel(self, task_id: str) -> TaskRecord:
        """Cancel a task: a waiting one at once, a running one as soon as its worker hears.

        PostgreSQL first (the task and its open attempt end as ``cancelled``), then Redis. If
        Redis is not told, a worker that claims the task learns from the claim's record that
        the task has ended, and stops it.
        """
        task = await self.get(task_id)
        if task.done:
            return task
        with unavailable("PostgreSQL"):
            updated, settled = await self.store.mark_cancelled(task.id)
        if updated is None:
            raise NotFound(f"task {task.id} not found")
        try:
            await self.dispatcher.cancel(task.queue_ref, task.id)
            await self.dispatcher.follow_up(settled.released, settled.withdrawn)
        except STORE_ERRORS as exc:
            log.warning("redis unavailable while cancelling %s: %s", task.id, exc)
        return updated

    async def dead_letters(
        self, ref: QueueRef, page_size: int, page_token: str | None
    ) -> tuple[list[TaskRecord], str | None]:
        return await self.list_tasks(
            namespace=ref.namespace,
            queue=ref.name,
            states=[TaskState.FAILED.value],
            page_size=page_size,
            page_token=page_token,
        )

    async def replay(self, ref: QueueRef, task_ids: Sequence[str]) -> list[str]:
        ids = [parse_task_id(t, f"task_ids[{i}]") for i, t in enumerate(task_ids)]
        with unavailable("PostgreSQL"):
            tasks = await self.store.reset_for_replay(ref.namespace, ref.name, ids or None)
        if tasks:
            try:
                await self.dispatcher.enqueue(ref, [enqueue_item(t, ready_now=True) for t in tasks])
                await self.dispatcher.count_replayed(ref, len(tasks))
            except STORE_ERRORS as exc:
                # Already queued in PostgreSQL: housekeeping dispatches them once Redis is back.
                log.warning(
                    "redis unavailable; replayed tasks of %s wait for the sweep: %s", ref, exc
                )
        return [t.id for t in tasks]

    async def set_rate_limit(self, ref: QueueRef, rate: RateLimit | None) -> None:
        """Change only the queue's rate limit."""
        with unavailable("PostgreSQL"):
            current = await self.queue_store.get(ref) or QueueConfig()
        await self.configure_queue(ref, replace(current, rate=rate))


def _bounded(rows: list[TaskRecord], limit: int) -> list[TaskRecord]:
    """The first rows whose payloads, results and tracebacks fit in ``limit`` bytes (always at
    least one: a single task is bounded by the payload and result limits)."""
    size = 0
    for i, row in enumerate(rows):
        size += len(row.payload_json) + len(row.result_json or "") + len(row.traceback or "")
        size += len(row.error or "") + 512
        if size > limit and i:
            return rows[:i]
    return rows


def _redact(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}"
    return url
