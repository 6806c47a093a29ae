"""taskiq with taskiq-redis's stream broker (acknowledged delivery); run as
``taskiq worker taskiq_app:broker --workers 2 --max-async-tasks 100`` (its defaults)."""

from __future__ import annotations

import asyncio
import time

import redis.asyncio as aioredis
from common import COUNTER, REDIS_URL, STARTED
from taskiq_redis import RedisStreamBroker

broker = RedisStreamBroker(url=REDIS_URL)


class _Own:
    client: aioredis.Redis | None = None

    @classmethod
    def get(cls) -> aioredis.Redis:
        if cls.client is None:
            cls.client = aioredis.Redis.from_url(REDIS_URL)
        return cls.client


@broker.task(task_name="incr")
async def incr() -> None:
    await _Own.get().incr(COUNTER)


@broker.task(task_name="stamp")
async def stamp(seq: str) -> None:
    await _Own.get().hset(STARTED, seq, repr(time.time()))


def worker_argv(python_bin: str) -> list[str]:
    return [
        f"{python_bin}/taskiq",
        "worker",
        "taskiq_app:broker",
        "--workers",
        "2",
        "--max-async-tasks",
        "100",
        "--log-level",
        "WARNING",
    ]


class _Loop:
    loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def get(cls) -> asyncio.AbstractEventLoop:
        if cls.loop is None:
            cls.loop = asyncio.new_event_loop()
            cls.loop.run_until_complete(broker.startup())
        return cls.loop


def submit_one(name: str, *args: str) -> None:
    task = incr if name == "incr" else stamp
    _Loop.get().run_until_complete(task.kiq(*args))


def close() -> None:
    if _Loop.loop is not None:
        _Loop.loop.run_until_complete(broker.shutdown())
        _Loop.loop.close()
        _Loop.loop = None
