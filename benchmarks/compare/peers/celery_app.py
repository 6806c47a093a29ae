"""Celery with the Redis transport, tuned as its optimizing guide says for many short tasks:
prefork with one process per core, a high prefetch multiplier, results ignored, no gossip,
mingle or heartbeat."""

from __future__ import annotations

import os
import time

import redis
from celery import Celery
from common import COUNTER, REDIS_URL, STARTED

app = Celery("bench", broker=REDIS_URL)
app.conf.update(
    task_ignore_result=True,
    worker_prefetch_multiplier=64,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    task_default_queue="bench",
)


class _Own:
    """Each prefork child makes its own client (a socket must not be shared across fork)."""

    client: redis.Redis | None = None
    pid = 0

    @classmethod
    def get(cls) -> redis.Redis:
        if cls.client is None or cls.pid != os.getpid():
            cls.client, cls.pid = redis.Redis.from_url(REDIS_URL), os.getpid()
        return cls.client


@app.task(name="incr")
def incr() -> None:
    _Own.get().incr(COUNTER)


@app.task(name="stamp")
def stamp(seq: str) -> None:
    _Own.get().hset(STARTED, seq, repr(time.time()))


def worker_argv(python_bin: str) -> list[str]:
    return [
        f"{python_bin}/celery",
        "-A",
        "celery_app",
        "worker",
        "--pool",
        "prefork",
        "--concurrency",
        "2",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        "--loglevel",
        "WARNING",
        "-Q",
        "bench",
    ]


def submit_one(name: str, *args: str) -> None:
    (incr if name == "incr" else stamp).delay(*args)


def close() -> None:
    pass
