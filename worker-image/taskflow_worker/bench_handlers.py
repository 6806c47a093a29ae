"""The handlers the benchmark suite runs (``--app taskflow_worker.bench_handlers:router``).

``incr`` is the handler every system in the comparison runs: one Redis INCR from the handler's
own client. ``stamp`` writes the wall-clock instant the handler started, for end-to-end latency.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from typing import Any, cast

from redis.asyncio import Redis, RedisCluster

from taskflow import keys as K
from taskflow.queue.dispatch import CLUSTER_SCHEME, is_cluster
from taskflow_worker import Router, TaskContext

router = Router()

#: SHA-256 rounds of the ``cpu`` handler (about 1 ms of CPU on a 2020s core).
CPU_ROUNDS = 2000


class _Own:
    """The handlers' own Redis client, made on first use in the worker process."""

    client: Redis | None = None

    @classmethod
    def redis(cls) -> Redis:
        if cls.client is None:
            url = os.environ.get("TASKFLOW_REDIS_URL", "redis://localhost")
            if is_cluster(url):
                rest = url[len(CLUSTER_SCHEME) :]
                cls.client = cast(Redis, RedisCluster.from_url(f"redis://{rest}"))
            else:
                cls.client = Redis.from_url(url)
        return cls.client


@router.task("noop")
async def noop(ctx: TaskContext, payload: Any) -> None:
    return None


@router.task("incr")
async def incr(ctx: TaskContext, payload: Any) -> None:
    await _Own.redis().incr(K.BENCH_COUNTER)


@router.task("sleep")
async def sleep(ctx: TaskContext, payload: Any) -> None:
    await asyncio.sleep(0.001)


@router.task("cpu")
async def cpu(ctx: TaskContext, payload: Any) -> None:
    digest = b"taskflow"
    for _ in range(CPU_ROUNDS):
        digest = hashlib.sha256(digest).digest()


@router.task("stamp")
async def stamp(ctx: TaskContext, payload: Any) -> None:
    started = time.time()
    await _Own.redis().hset(K.BENCH_STARTED, ctx.task_id, repr(started))
