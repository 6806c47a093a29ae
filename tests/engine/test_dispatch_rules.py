"""Ordering and limits: priority, delay, idempotency, rate limit, concurrency key."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from taskflow.engine import Engine
from taskflow.housekeeping import Housekeeper
from taskflow.models import QueueConfig, RateLimit, RetryPolicy, TaskState, validate_submission
from taskflow_worker import Router, TaskContext
from tests.engine.conftest import QUEUE, Submit, WorkerHarness, wait_for


async def test_higher_priority_first_then_fifo(
    engine: Engine, workers: WorkerHarness, submit: Submit
) -> None:
    order: list[str] = []
    router = Router()

    @router.task("record")
    async def record(ctx: TaskContext, payload: str) -> None:
        order.append(payload)

    plan = [("low-1", 0), ("high-1", 10), ("low-2", 0), ("mid-1", 5), ("high-2", 10), ("neg", -3)]
    ids = [await submit("record", name, priority=prio) for name, prio in plan]
    workers.start(router, concurrency=1)
    for task_id in ids:
        await wait_for(engine, task_id)
    assert order == ["high-1", "high-2", "mid-1", "low-1", "low-2", "neg"]


async def test_delayed_task_waits_until_due(
    engine: Engine, workers: WorkerHarness, submit: Submit
) -> None:
    router = Router()

    @router.task("noop")
    async def noop(ctx: TaskContext, payload: None) -> None:
        return None

    workers.start(router)
    task_id = await submit("noop", delay_seconds=1.0)
    assert (await engine.get(task_id)).state == TaskState.SCHEDULED
    stats = await engine.queue_stats(QUEUE)
    assert stats.scheduled == 1 and stats.ready == 0
    task = await wait_for(engine, task_id)
    assert task.state == TaskState.SUCCEEDED
    assert task.started_at is not None and task.run_at is not None
    # The delay counts from the instant the engine accepted the task (one clock for both),
    # and the worker starts it no earlier than that.
    assert task.run_at == task.created_at + timedelta(seconds=1.0)
    assert task.started_at >= task.run_at


async def test_run_at_in_the_future(engine: Engine, submit: Submit) -> None:
    when = datetime.now(UTC) + timedelta(hours=1)
    task_id = await submit("noop", run_at=when)
    task = await engine.get(task_id)
    assert task.state == TaskState.SCHEDULED and task.run_at == when


async def test_idempotency_key_returns_the_original_task(engine: Engine) -> None:
    spec = validate_submission({"queue": "jobs", "handler": "h", "idempotency_key": "order-42"})
    first = await engine.submit([spec])
    again = await engine.submit([spec, spec])
    assert first[0].created and not again[0].created and not again[1].created
    assert {r.task_id for r in first + again} == {first[0].task_id}
    stats = await engine.queue_stats(QUEUE)
    assert stats.ready == 1
    other_queue = validate_submission(
        {"queue": "other", "handler": "h", "idempotency_key": "order-42"}
    )
    assert (await engine.submit([other_queue]))[0].created


async def test_rate_limit_bounds_starts_per_second(
    engine: Engine, workers: WorkerHarness, submit: Submit
) -> None:
    starts: list[float] = []
    router = Router()

    @router.task("tick")
    async def tick(ctx: TaskContext, payload: None) -> None:
        starts.append(asyncio.get_running_loop().time())

    await engine.set_rate_limit(QUEUE, RateLimit(per_second=5, burst=2))
    ids = [await submit("tick") for _ in range(12)]
    workers.start(router, concurrency=8)
    for task_id in ids:
        await wait_for(engine, task_id)
    starts.sort()
    # A token bucket of 5/s with burst 2 admits at most 2 + 5*w starts in any window of w s.
    for i, t0 in enumerate(starts):
        in_window = [t for t in starts[i:] if t - t0 <= 1.0]
        assert len(in_window) <= 2 + 5 * 1.0 + 1, starts


async def test_concurrency_key_limits_parallel_runs(
    engine: Engine, workers: WorkerHarness, submit: Submit
) -> None:
    running = 0
    peak = 0
    router = Router()

    @router.task("charge")
    async def charge(ctx: TaskContext, payload: None) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.1)
        running -= 1

    limited = [
        await submit("charge", concurrency_key="account-7", concurrency_limit=2) for _ in range(6)
    ]
    workers.start(router, concurrency=6)
    for task_id in limited:
        assert (await wait_for(engine, task_id)).state == TaskState.SUCCEEDED
    assert peak <= 2
    stats = await engine.queue_stats(QUEUE)
    assert stats.ready == 0 and stats.running == 0 and stats.succeeded == 6


async def test_queue_settings_fill_what_a_task_leaves_unset(engine: Engine, submit: Submit) -> None:
    await engine.configure_queue(
        QUEUE,
        QueueConfig(
            max_retries=7,
            retry=RetryPolicy(initial_seconds=0.5, multiplier=3, max_seconds=9),
            timeout_seconds=12,
            rate=RateLimit(per_second=50, burst=5),
        ),
    )
    inherits = await engine.get(await submit("noop"))
    assert (inherits.max_retries, inherits.timeout_seconds) == (7, 12)
    assert inherits.retry == RetryPolicy(initial_seconds=0.5, multiplier=3, max_seconds=9)
    own = await engine.get(await submit("noop", max_retries=1, timeout_seconds=2))
    assert (own.max_retries, own.timeout_seconds) == (1, 2)
    assert await engine.dispatcher.rate_limit(QUEUE) == RateLimit(per_second=50, burst=5)


async def test_rate_limit_comes_back_after_redis_lost_its_data(engine: Engine) -> None:
    await engine.configure_queue(QUEUE, QueueConfig(rate=RateLimit(per_second=3, burst=1)))
    await engine.dispatcher.redis.flushall()
    report = await Housekeeper(engine).sweep_once()
    assert report.rebuilt
    assert await engine.dispatcher.rate_limit(QUEUE) == RateLimit(per_second=3, burst=1)
    assert QUEUE in await engine.dispatcher.queues()
