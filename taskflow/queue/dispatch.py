"""The Redis dispatch index: every transition is one Lua script call for a batch of tasks."""

from __future__ import annotations

import asyncio
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from redis.asyncio import Redis, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from taskflow import keys as K
from taskflow.keys import QueueKeys, QueueRef
from taskflow.models import (
    ClaimedTask,
    DispatchBlob,
    ExpiredLease,
    RateLimit,
    TaskRecord,
    WorkerStatus,
)
from taskflow.queue.scripts import Scripts, legacy_script_source
from taskflow.waiting import cancel_and_wait

__all__ = [
    "ClaimBatch",
    "Dispatcher",
    "EnqueueItem",
    "RateLimit",
    "RedisAction",
    "due_ms",
    "enqueue_item",
]


@dataclass(frozen=True)
class EnqueueItem:
    id: str
    blob: DispatchBlob
    priority: int
    due_ms: int  # 0 = ready now
    deliveries: int = 0
    failures: int = 0
    concurrency_key: str | None = None
    concurrency_limit: int | None = None


@dataclass(frozen=True)
class ClaimBatch:
    tasks: list[ClaimedTask]
    now_ms: int
    next_due_ms: int | None  # earliest delayed task, to bound an idle worker's sleep


@dataclass(frozen=True)
class RedisAction:
    """One step of ``complete.lua`` or ``reclaim.lua``: the claim it ends and how."""

    id: str
    token: str
    action: str  # complete: ack|retry|release; reclaim: requeue|delay|forget
    arg: str = ""


def due_ms(when: datetime) -> int:
    """``when`` in Redis milliseconds, rounded up: a task is never due before its time."""
    return math.ceil(when.timestamp() * 1000)


def enqueue_item(task: TaskRecord, *, ready_now: bool = False) -> EnqueueItem:
    """How a recorded task is handed to Redis again (replay, repair, rebuild)."""
    due = task.run_at if task.run_at and not ready_now else None
    return EnqueueItem(
        id=task.id,
        blob=task.dispatch_blob(),
        priority=task.priority,
        due_ms=due_ms(due) if due else 0,
        deliveries=task.attempts,
        failures=task.failures,
        concurrency_key=task.concurrency_key,
        concurrency_limit=task.concurrency_limit,
    )


def _flat(items: Sequence[RedisAction]) -> list[Any]:
    args: list[Any] = [len(items)]
    for it in items:
        args += [it.id, it.token, it.action, it.arg]
    return args


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


#: The scheme of a Redis Cluster URL (any node's address): ``redis+cluster://host:port``.
CLUSTER_SCHEME = "redis+cluster://"


def is_cluster(url: str) -> bool:
    return url.startswith(CLUSTER_SCHEME)


def connect(url: str) -> Redis:
    """A Redis client for the dispatch index. It never repeats a command by itself: a script
    whose reply was lost may have run (a claim, an ack), so the caller decides what to do.

    A ``redis+cluster://`` URL gives a cluster client. Every script call and every command
    TaskFlow sends names keys of one hash tag (one slot), so the cluster client routes each to
    one master and offers the same commands; it is typed as ``Redis`` for that reason.
    """
    if is_cluster(url):
        cluster = RedisCluster.from_url(
            "redis://" + url[len(CLUSTER_SCHEME) :],
            decode_responses=False,
            retry=Retry(NoBackoff(), 0),
        )
        return cast(Redis, cluster)
    return Redis.from_url(url, decode_responses=False, retry=Retry(NoBackoff(), 0))


class Dispatcher:
    """Thin, typed access to the queue scripts for one Redis connection pool."""

    @classmethod
    def connect(cls, url: str) -> Dispatcher:
        return cls(connect(url))

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._scripts = Scripts(redis)
        self._known_queues: set[str] = set()

    async def register_queue(self, ref: QueueRef) -> None:
        if ref.qualified not in self._known_queues:
            await self.redis.sadd(K.QUEUES, ref.qualified)
            self._known_queues.add(ref.qualified)

    async def forget_legacy_parked(self) -> int:
        """Forget in Redis the tasks parked in per-key ZSETs by an older TaskFlow (see
        ``forget_legacy_parked.lua``); the sweep dispatches them again from PostgreSQL."""
        script = self.redis.register_script(legacy_script_source())
        forgotten = 0
        async for raw in self.redis.scan_iter(match=K.LEGACY_PARKED_MATCH, count=1000):
            key = raw.decode() if isinstance(raw, bytes) else str(raw)
            ref = K.legacy_parked_queue(key)
            if ref is None:
                continue
            qk = QueueKeys(ref)
            forgotten += int(await script(keys=[key, qk.data, qk.stats]))
        return forgotten

    def forget_registrations(self) -> None:
        """Redis lost its data: register queues again on their next use."""
        self._known_queues.clear()

    async def restore_counters(self, ref: QueueRef, counts: dict[str, int]) -> None:
        """Rebuild a queue's outcome counters (after Redis lost its data)."""
        await self.register_queue(ref)
        if counts:
            await self.redis.hset(QueueKeys(ref).stats, mapping=counts)  # type: ignore[arg-type]

    async def count_replayed(self, ref: QueueRef, n: int) -> None:
        """Dead letters sent back to the queue (dead letters = failed - replayed)."""
        await self.redis.hincrby(QueueKeys(ref).stats, "replayed", n)

    async def announce_worker(self, status: WorkerStatus) -> None:
        await self.redis.hset(K.WORKERS, status.name, status.encode())

    async def forget_worker(self, name: str) -> None:
        await self.redis.hdel(K.WORKERS, name)

    async def workers(self) -> list[WorkerStatus]:
        """Every worker that announced itself (stale entries included: see ``seen_at``)."""
        raw = await self.redis.hgetall(K.WORKERS)
        found = []
        for name, value in raw.items():
            try:
                found.append(WorkerStatus.decode(_s(name), value))
            except (ValueError, KeyError, TypeError):
                continue  # not ours, or from an incompatible version: not shown
        return sorted(found, key=lambda w: w.name)

    async def queues(self) -> list[QueueRef]:
        members = await self.redis.smembers(K.QUEUES)
        return sorted((QueueRef.parse(_s(m)) for m in members), key=lambda r: r.qualified)

    async def enqueue(self, ref: QueueRef, items: Sequence[EnqueueItem]) -> int:
        if not items:
            return 0
        await self.register_queue(ref)
        args: list[Any] = [len(items)]
        for it in items:
            ckey = f"{it.concurrency_limit}|{it.concurrency_key}" if it.concurrency_key else ""
            args += [
                it.id,
                it.blob.encode(),
                it.priority,
                it.due_ms,
                it.deliveries,
                it.failures,
                ckey,
            ]
        return int(await self._scripts.run("enqueue", QueueKeys(ref), *args))

    async def claim(
        self,
        ref: QueueRef,
        count: int,
        *,
        lease_ms: int,
        worker: str,
        rate: RateLimit | None = None,
        promote_limit: int = 1000,
    ) -> ClaimBatch:
        per_second, burst = (rate.per_second, rate.burst) if rate else (0, 0)
        raw = await self._scripts.run(
            "claim", QueueKeys(ref), count, lease_ms, worker, promote_limit, per_second, burst
        )
        now_ms, next_due = int(raw[0]), int(raw[1])
        tasks = [
            ClaimedTask(
                queue=ref,
                id=_s(raw[i]),
                token=_s(raw[i + 1]),
                attempt=int(raw[i + 2]),
                failures=int(raw[i + 3]),
                blob=DispatchBlob.decode(_s(raw[i]), raw[i + 4]),
            )
            for i in range(2, len(raw), 5)
        ]
        return ClaimBatch(tasks, now_ms, None if next_due < 0 else next_due)

    async def complete(self, ref: QueueRef, items: Sequence[RedisAction]) -> list[bool]:
        """End claims after PostgreSQL recorded them (``complete.lua``); False = stale token."""
        if not items:
            return []
        return [bool(x) for x in await self._scripts.run("complete", QueueKeys(ref), *_flat(items))]

    async def extend(
        self, ref: QueueRef, items: Sequence[tuple[str, str]], lease_ms: int
    ) -> list[str]:
        """Heartbeat for claims ``(id, token)``: ``ok``, ``cancel`` or ``lost`` for each."""
        if not items:
            return []
        args: list[Any] = [lease_ms, len(items)]
        for task_id, token in items:
            args += [task_id, token]
        return [_s(x) for x in await self._scripts.run("extend", QueueKeys(ref), *args)]

    async def cancel(self, ref: QueueRef, task_id: str) -> str:
        keys = QueueKeys(ref)
        return _s(await self._scripts.run("cancel", keys, task_id, keys.cancel_channel))

    async def follow_up(
        self, released: Sequence[TaskRecord], withdrawn: Sequence[tuple[QueueRef, str]]
    ) -> None:
        """Dispatch DAG steps PostgreSQL released; withdraw the ones it cancelled."""
        by_queue: dict[QueueRef, list[EnqueueItem]] = defaultdict(list)
        for task in released:
            by_queue[task.queue_ref].append(enqueue_item(task))
        for ref, items in by_queue.items():
            await self.enqueue(ref, items)
        for ref, task_id in withdrawn:
            await self.cancel(ref, task_id)

    async def expired(self, ref: QueueRef, *, limit: int) -> list[ExpiredLease]:
        """Leases whose deadline passed (nothing changes; see ``reclaim``)."""
        raw = await self._scripts.run("expired", QueueKeys(ref), limit)
        return [
            ExpiredLease(
                task_id=_s(raw[i]),
                token=_s(raw[i + 1]),
                worker=_s(raw[i + 2]),
                attempt=int(raw[i + 3]),
                lost=int(raw[i + 4]),
                cancel_requested=bool(int(raw[i + 5])),
            )
            for i in range(0, len(raw), 6)
        ]

    async def reclaim(self, ref: QueueRef, items: Sequence[RedisAction]) -> list[bool]:
        """End expired leases as PostgreSQL decided (``reclaim.lua``); False = changed hands."""
        if not items:
            return []
        return [bool(x) for x in await self._scripts.run("reclaim", QueueKeys(ref), *_flat(items))]

    async def promote(self, ref: QueueRef, limit: int = 10000) -> int:
        return int(await self._scripts.run("promote", QueueKeys(ref), limit))

    async def known(self, ref: QueueRef, ids: Sequence[str]) -> list[bool]:
        if not ids:
            return []
        found = await self.redis.hmget(QueueKeys(ref).data, list(ids))
        return [v is not None for v in found]

    async def wait_for_work(self, refs: Sequence[QueueRef], timeout: float) -> None:
        """Block until a wake-up token arrives on any of ``refs`` or ``timeout`` passes."""
        keys = [QueueKeys(r).notify for r in refs]
        wait = max(timeout, 0.01)
        if len(keys) == 1 or not isinstance(self.redis, RedisCluster):
            await self.redis.blpop(keys, timeout=wait)
            return
        # In a cluster each queue's list may sit on another master: one BLPOP per queue.
        waits = [asyncio.ensure_future(self.redis.blpop([k], timeout=wait)) for k in keys]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            await cancel_and_wait(*waits)

    async def set_rate_limit(self, ref: QueueRef, rate: RateLimit | None) -> None:
        k = QueueKeys(ref)
        if rate is None:
            await self.redis.hdel(k.config, "rate", "burst")
        else:
            await self.redis.hset(k.config, mapping={"rate": rate.per_second, "burst": rate.burst})

    async def rate_limit(self, ref: QueueRef) -> RateLimit | None:
        rate, burst = await self.redis.hmget(QueueKeys(ref).config, ["rate", "burst"])
        if rate is None:
            return None
        return RateLimit(float(rate), int(burst or 1))

    async def counts(self, ref: QueueRef, now_ms: int) -> dict[str, int]:
        k = QueueKeys(ref)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zcard(k.ready)
            pipe.zcard(k.delayed)
            pipe.zcount(k.delayed, "-inf", now_ms)
            pipe.hlen(k.running)
            pipe.hgetall(k.stats)
            ready, delayed, due, running, stats = await pipe.execute()
        outcome = {_s(a): int(b) for a, b in stats.items()}
        return {
            "ready": int(ready) + max(0, outcome.get("parked", 0)),
            "scheduled": int(delayed) - int(due),
            "due_delayed": int(due),
            "running": int(running),
            "succeeded": outcome.get("succeeded", 0),
            "failed": outcome.get("failed", 0),
            "cancelled": outcome.get("cancelled", 0),
            "replayed": outcome.get("replayed", 0),
        }
