"""Drain rate of worker processes, every completion committed to PostgreSQL, and how far the
durable record trails the handlers (handler end → commit, per task and for the last one).

    python benchmarks/worker_throughput.py --tasks 50000 --workers 2 --concurrency 200 \
        --handler incr

``--handler``: ``incr`` (one Redis INCR from the handler's own client: real I/O, the way users
run), ``sleep`` (1 ms of asyncio sleep) or ``noop``. Uses the servers named by
TASKFLOW_REDIS_URL / TASKFLOW_DATABASE_URL, or starts embedded ones in a temporary directory.
Tasks are inserted through the engine before the workers start, so the figure is the
claim → run → record → ack path alone. The lag is ``updated_at`` (the commit's clock) minus
``finished_at`` (the handler's end), both on this machine's clock.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from taskflow.config import Settings
from taskflow.engine import Engine
from taskflow.keys import QueueRef
from taskflow.models import validate_submission
from taskflow.store import apply_migrations

QUEUE = QueueRef("default", "bench")
WORKER_CODE = """
import asyncio, sys
import redis.asyncio as aioredis
from taskflow.config import Settings
from taskflow.keys import QueueRef
from taskflow.logs import configure_logging
from taskflow_worker import Router
from taskflow_worker.runtime import WorkerConfig
from taskflow_worker.serve import serve_worker
configure_logging("WARNING")
settings = Settings.from_env()
counter = aioredis.Redis.from_url(settings.redis_url)
router = Router()
@router.task("noop")
async def noop(ctx, payload):
    return None
@router.task("incr")
async def incr(ctx, payload):
    return await counter.incr("bench:counter")
@router.task("sleep")
async def sleep(ctx, payload):
    await asyncio.sleep(0.001)
asyncio.run(serve_worker(router, settings,
    WorkerConfig(queues=[QueueRef("default", "bench")], concurrency=int(sys.argv[1]))))
"""

LAG_SQL = """
SELECT percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY lag), max(lag),
       extract(epoch FROM max(updated_at) - max(finished_at))
FROM (SELECT updated_at, finished_at, extract(epoch FROM updated_at - finished_at) AS lag
      FROM tasks WHERE queue = 'bench' AND state = 'succeeded') t
"""


async def run(args: argparse.Namespace, settings: Settings) -> None:
    await apply_migrations(settings.database_url)
    engine = await Engine.connect(settings)
    await engine.dispatcher.redis.delete(
        *[k async for k in engine.dispatcher.redis.scan_iter("tf:{default/bench}*")] or ["x"]
    )
    t0 = time.perf_counter()
    for start in range(0, args.tasks, 1000):
        n = min(1000, args.tasks - start)
        spec = validate_submission({"queue": QUEUE.name, "handler": args.handler})
        await engine.submit([spec] * n)
    submit_s = time.perf_counter() - t0
    print(f"submitted {args.tasks} in {submit_s:.2f}s ({args.tasks / submit_s:,.0f}/s)")
    base = (await engine.queue_stats(QUEUE)).succeeded
    env = {
        **os.environ,
        "TASKFLOW_REDIS_URL": settings.redis_url,
        "TASKFLOW_DATABASE_URL": settings.database_url,
    }
    procs = [
        subprocess.Popen([sys.executable, "-c", WORKER_CODE, str(args.concurrency)], env=env)
        for _ in range(args.workers)
    ]
    try:
        t0 = time.perf_counter()
        first = None
        while True:
            done = (await engine.queue_stats(QUEUE)).succeeded - base
            if done and first is None:
                first = time.perf_counter()
            if done >= args.tasks:
                break
            await asyncio.sleep(0.05)
        end = time.perf_counter()
        # Wait for the PostgreSQL record of the last completions.
        async with engine.store.pool.connection() as conn:
            while True:
                cur = await conn.execute(
                    "SELECT count(*) FROM tasks WHERE queue = 'bench' AND state <> 'succeeded'"
                )
                row = await cur.fetchone()
                if row and row[0] == 0:
                    break
                await asyncio.sleep(0.02)
            recorded = time.perf_counter()
            cur = await conn.execute(LAG_SQL)
            lag = await cur.fetchone()
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait()
    assert first is not None and lag is not None
    drain = end - first
    print(
        f"drained {args.tasks} ({args.handler}) with {args.workers} worker(s) x {args.concurrency}: "
        f"{drain:.2f}s from first completion ({args.tasks / drain:,.0f}/s); "
        f"all recorded in PostgreSQL after {recorded - t0:.2f}s ({args.tasks / (recorded - t0):,.0f}/s incl. start-up)"
    )
    (p50, p99), worst, last = lag[0], lag[1], lag[2]
    print(
        f"record lag (handler end -> commit): p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, "
        f"max {worst * 1000:.1f} ms; last commit {last * 1000:.1f} ms after the last handler ended"
    )
    await engine.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=20000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--handler", choices=["incr", "sleep", "noop"], default="incr")
    args = parser.parse_args()
    with ExitStack() as stack:
        if os.environ.get("TASKFLOW_REDIS_URL") and os.environ.get("TASKFLOW_DATABASE_URL"):
            settings = Settings.from_env()
        else:
            from taskflow.embedded import EmbeddedPostgres, EmbeddedRedis

            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            redis = stack.enter_context(EmbeddedRedis(tmp / "redis", persistent=False))
            pg = stack.enter_context(EmbeddedPostgres(tmp / "pg"))
            settings = Settings(redis_url=redis.url, database_url=pg.url)
        asyncio.run(run(args, settings))


if __name__ == "__main__":
    main()
