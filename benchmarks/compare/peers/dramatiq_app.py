"""Dramatiq with its Redis broker; run as ``dramatiq dramatiq_app --processes 2 --threads 8``
(its defaults on a 2-core machine)."""

from __future__ import annotations

import time

import dramatiq
import redis
from common import COUNTER, REDIS_URL, STARTED
from dramatiq.brokers.redis import RedisBroker

broker = RedisBroker(url=REDIS_URL)
dramatiq.set_broker(broker)
own = redis.Redis.from_url(REDIS_URL)


@dramatiq.actor(queue_name="bench", max_retries=0)
def incr() -> None:
    own.incr(COUNTER)


@dramatiq.actor(queue_name="bench", max_retries=0)
def stamp(seq: str) -> None:
    own.hset(STARTED, seq, repr(time.time()))


def worker_argv(python_bin: str) -> list[str]:
    return [f"{python_bin}/dramatiq", "dramatiq_app", "--processes", "2", "--threads", "8"]


def submit_one(name: str, *args: str) -> None:
    (incr if name == "incr" else stamp).send(*args)


def close() -> None:
    broker.close()
