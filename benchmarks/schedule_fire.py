"""Cron fire cost: N schedules due on one tick, against submitting the same N tasks directly.

    python benchmarks/schedule_fire.py --schedules 1000

Stores N schedules on ``* * * * *``, moves the scheduler's clock to the next minute and times
the passes until every schedule fired once (each fire: an intent write, ``Engine.submit`` with
the tick's idempotency key, a fire record). Beside it, in the same run: the same N tasks
submitted with one ``Engine.submit`` call each, and in calls of a pass's batch size (the floor:
a pass adds its claim and record statements to that), and the cost of an idle pass (nothing
due) with N schedules stored. Uses TASKFLOW_REDIS_URL and
TASKFLOW_DATABASE_URL when both are set, else embedded servers in a temporary directory.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

from taskflow.config import Settings
from taskflow.engine import Engine
from taskflow.models import validate_submission
from taskflow.scheduling import Scheduler, ScheduleService
from taskflow.scheduling.models import validate_schedule
from taskflow.store import apply_migrations


class Clock:
    def __init__(self) -> None:
        self.current = datetime.now(UTC).replace(second=0, microsecond=0)

    def now(self) -> datetime:
        return self.current


async def run(args: argparse.Namespace, settings: Settings) -> None:
    await apply_migrations(settings.database_url)
    engine = await Engine.connect(settings)
    clock = Clock()
    service = ScheduleService(engine, clock)
    for i in range(args.schedules):
        await service.put(
            validate_schedule(
                namespace="bench",
                name=f"s{i}",
                cron="* * * * *",
                target={"queue": "cron-bench", "handler": "noop"},
            )
        )
    scheduler = Scheduler(engine, clock=clock, batch=args.batch)
    idle = []
    for _ in range(20):
        t0 = time.perf_counter()
        assert (await scheduler.run_once()).fired == 0
        idle.append((time.perf_counter() - t0) * 1000)

    for minute in range(1, args.ticks + 1):
        clock.current += timedelta(minutes=1)
        t0 = time.perf_counter()
        fired = 0
        while fired < args.schedules:
            fired += (await scheduler.run_once()).fired
        took = time.perf_counter() - t0
        print(
            f"tick {minute}: {args.schedules} schedules fired in {took:.2f}s "
            f"({args.schedules / took:,.0f} fires/s, batches of {args.batch})"
        )

    specs = [
        validate_submission({"namespace": "bench", "queue": "direct", "handler": "noop"})
        for _ in range(args.schedules)
    ]
    t0 = time.perf_counter()
    for spec in specs:
        await engine.submit([spec])
    took = time.perf_counter() - t0
    print(
        f"peer: the same {args.schedules} tasks, one Engine.submit each: {took:.2f}s "
        f"({args.schedules / took:,.0f} submits/s)"
    )
    t0 = time.perf_counter()
    for offset in range(0, len(specs), args.batch):
        await engine.submit(specs[offset : offset + args.batch])
    took = time.perf_counter() - t0
    print(
        f"peer: the same {args.schedules} tasks, Engine.submit of {args.batch} at a time: "
        f"{took:.2f}s ({args.schedules / took:,.0f} submits/s)"
    )
    print(
        f"idle pass with {args.schedules} schedules stored: {statistics.median(idle):.2f} ms median"
    )
    await engine.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--schedules", type=int, default=1000)
    parser.add_argument("--ticks", type=int, default=3)
    parser.add_argument("--batch", type=int, default=200)
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
