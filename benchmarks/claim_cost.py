"""Claim cost against queue depth: claiming must cost the same at 1,000 and 1,000,000.

    python benchmarks/claim_cost.py --depths 1000 100000 1000000

Fills a queue in Redis directly with the enqueue script (no PostgreSQL: this measures the
dispatch index alone), then times claim+ack of batches of 100 at each depth. Uses
TASKFLOW_REDIS_URL, or an embedded Redis in a temporary directory.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import redis.asyncio as aioredis

from taskflow.keys import QueueRef
from taskflow.models import DispatchBlob, RetryPolicy, new_task_id
from taskflow.queue.dispatch import Dispatcher, EnqueueItem

QUEUE = QueueRef("default", "claim-cost")
BLOB = DispatchBlob("", "noop", "null", 3, 0.0, RetryPolicy())


async def fill(d: Dispatcher, target: int) -> None:
    have = int(await d.redis.zcard(f"tf:{{{QUEUE.qualified}}}:ready"))
    while have < target:
        n = min(5000, target - have)
        items = [EnqueueItem(new_task_id(), BLOB, i % 10, 0) for i in range(n)]
        await d.enqueue(QUEUE, items)
        have += n


async def measure(d: Dispatcher, rounds: int) -> list[float]:
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        batch = await d.claim(QUEUE, 100, lease_ms=30000, worker="bench")
        await d.ack(QUEUE, [(t.id, t.token, "succeeded") for t in batch.tasks])
        times.append((time.perf_counter() - t0) * 1e6 / max(1, len(batch.tasks)))
        # Put the same number back so the depth stays constant.
        await d.enqueue(QUEUE, [EnqueueItem(new_task_id(), BLOB, 5, 0) for _ in batch.tasks])
    return times


async def run(url: str, depths: list[int], rounds: int) -> None:
    d = Dispatcher(aioredis.Redis.from_url(url))
    keys = [k async for k in d.redis.scan_iter(f"tf:{{{QUEUE.qualified}}}:*")]
    if keys:
        await d.redis.delete(*keys)
    for depth in sorted(depths):
        await fill(d, depth)
        await measure(d, 5)  # warm up
        us = await measure(d, rounds)
        print(
            f"depth {depth:>9,}: claim+ack {statistics.median(us):6.1f} µs/task median, "
            f"p90 {statistics.quantiles(us, n=10)[-1]:6.1f} µs/task"
        )
    await d.redis.aclose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--depths", type=int, nargs="+", default=[1000, 100_000, 1_000_000])
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    with ExitStack() as stack:
        url = os.environ.get("TASKFLOW_REDIS_URL")
        if not url:
            from taskflow.embedded import EmbeddedRedis

            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            url = stack.enter_context(EmbeddedRedis(tmp, persistent=False)).url
        asyncio.run(run(url, args.depths, args.rounds))


if __name__ == "__main__":
    main()
