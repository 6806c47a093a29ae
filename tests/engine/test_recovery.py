"""Nothing is lost: cancellation, dead workers, drains, a Redis that forgets everything."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

from taskflow.config import Settings
from taskflow.engine import Engine
from taskflow.housekeeping import Housekeeper
from taskflow.models import TaskState, new_task_id, utcnow, validate_submission
from taskflow.queue.dispatch import RedisAction
from taskflow.store.tasks import NewTask
from taskflow_worker import Router, TaskContext
from tests.engine.conftest import QUEUE, Submit, WorkerHarness, eventually, wait_for

REPO = Path(__file__).resolve().parents[2]


def start_worker_process(
    settings: Settings, concurrency: int, grace: float
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "TASKFLOW_REDIS_URL": settings.redis_url,
        "TASKFLOW_DATABASE_URL": settings.database_url,
        "TASKFLOW_LEASE_SECONDS": str(settings.lease_seconds),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "tests.engine.apps", QUEUE.name, str(concurrency), str(grace)],
        cwd=REPO,
        env=env,
    )


async def wait_lines(path: Path, n: int, timeout: float = 20.0) -> list[str]:
    async def enough() -> bool:
        return path.exists() and len(path.read_text().splitlines()) >= n

    await eventually(enough, timeout=timeout, what=f"{n} line(s) in {path.name}")
    return path.read_text().splitlines()


async def test_cancel_queued_task(engine: Engine, submit: Submit) -> None:
    task_id = await submit("noop")
    task = await engine.cancel(task_id)
    assert task.state == TaskState.CANCELLED
    stats = await engine.queue_stats(QUEUE)
    assert stats.ready == 0 and stats.cancelled == 1
    assert (await engine.cancel(task_id)).state == TaskState.CANCELLED


async def test_cancel_running_task_stops_its_handler(
    engine: Engine, workers: WorkerHarness, submit: Submit
) -> None:
    started = asyncio.Event()
    stopped = asyncio.Event()
    router = Router()

    @router.task("long")
    async def long(ctx: TaskContext, payload: None) -> None:
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            stopped.set()
            raise

    task_id = await submit("long")
    workers.start(router)
    await asyncio.wait_for(started.wait(), 20)
    assert (await engine.cancel(task_id)).state == TaskState.CANCELLED
    await asyncio.wait_for(stopped.wait(), 20)

    async def slot_released() -> bool:
        return (await engine.queue_stats(QUEUE)).running == 0

    await eventually(slot_released, what="the running slot to be released")

    async def attempt_recorded() -> bool:
        task = await engine.get(task_id, with_attempts=True)
        return [a.outcome for a in task.attempt_history] == ["cancelled"]

    await eventually(attempt_recorded, what="the attempt to be recorded as cancelled")
    assert (await engine.get(task_id)).state == TaskState.CANCELLED


async def test_expired_lease_is_reclaimed_and_the_stale_claim_is_fenced(
    engine: Engine, workers: WorkerHarness, submit: Submit, housekeeping: Housekeeper
) -> None:
    task_id = await submit("noop")
    # A worker that claims and then vanishes: it never heartbeats.
    ghost = await engine.dispatcher.claim(QUEUE, 1, lease_ms=300, worker="ghost")
    (claim,) = ghost.tasks
    router = Router()

    @router.task("noop")
    async def noop(ctx: TaskContext, payload: None) -> int:
        return ctx.attempt

    workers.start(router)
    task = await wait_for(engine, task_id)
    assert task.state == TaskState.SUCCEEDED and task.result == 2
    # The ghost comes back and tries to finish: its token no longer holds the task.
    stale = RedisAction(task_id, claim.token, "ack", "failed")
    assert await engine.dispatcher.complete(QUEUE, [stale]) == [False]
    assert task.failures == 0


async def test_killed_worker_task_succeeds_exactly_once(
    engine: Engine,
    settings: Settings,
    submit: Submit,
    housekeeping: Housekeeper,
    workers: WorkerHarness,
    tmp_path: Path,
) -> None:
    marker = tmp_path / "starts.log"
    task_id = await submit("mark_and_sleep", {"marker": str(marker), "seconds": 30})
    victim = start_worker_process(settings, concurrency=1, grace=0.1)
    try:
        await wait_lines(marker, 1)
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
    finally:
        victim.kill()
    runs: list[int] = []
    router = Router()

    @router.task("mark_and_sleep")
    async def fast(ctx: TaskContext, payload: dict[str, object]) -> str:
        runs.append(ctx.attempt)
        return "rescued"

    workers.start(router)
    task = await wait_for(engine, task_id)
    assert task.state == TaskState.SUCCEEDED and task.result == "rescued"
    assert runs == [2]
    assert [a.outcome for a in task.attempt_history] == ["lost", "succeeded"]


async def test_sigterm_drains_and_hands_back_what_does_not_finish(
    engine: Engine,
    settings: Settings,
    submit: Submit,
    tmp_path: Path,
    workers: WorkerHarness,
) -> None:
    marker = tmp_path / "starts.log"
    quick = await submit("mark_and_sleep", {"marker": str(marker), "seconds": 0.5})
    slow = await submit("mark_and_sleep", {"marker": str(marker), "seconds": 60})
    proc = start_worker_process(settings, concurrency=2, grace=2.0)
    try:
        await wait_lines(marker, 2)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
    assert (await engine.get(quick)).state == TaskState.SUCCEEDED
    handed_back = await engine.get(slow, with_attempts=True)
    assert handed_back.state == TaskState.QUEUED
    assert handed_back.failures == 0
    assert [a.outcome for a in handed_back.attempt_history] == ["released"]
    router = Router()

    @router.task("mark_and_sleep")
    async def fast(ctx: TaskContext, payload: dict[str, object]) -> int:
        return ctx.attempt

    workers.start(router)
    task = await wait_for(engine, slow)
    # The hand-back is an attempt of its own; the run that finished is the next one.
    assert task.state == TaskState.SUCCEEDED and task.result == 2
    assert [(a.number, a.outcome) for a in task.attempt_history] == [
        (1, "released"),
        (2, "succeeded"),
    ]
    assert task.failures == 0


async def test_redis_flushed_under_load_loses_nothing(
    engine: Engine, workers: WorkerHarness, housekeeping: Housekeeper
) -> None:
    done: list[str] = []
    router = Router()

    @router.task("work")
    async def work(ctx: TaskContext, payload: int) -> int:
        await asyncio.sleep(0.002)
        done.append(ctx.task_id)
        return payload

    specs = [
        validate_submission({"queue": "jobs", "handler": "work", "payload": i}) for i in range(400)
    ]
    ids = [r.task_id for r in await engine.submit(specs)]
    workers.start(router, concurrency=4)

    async def some_done() -> bool:
        return len(done) >= 50

    await eventually(some_done, what="the first tasks to finish")
    await engine.dispatcher.redis.flushall()
    for task_id in ids:
        assert (await wait_for(engine, task_id, timeout=60)).state == TaskState.SUCCEEDED
    records = await engine.store.get_many(ids)
    assert sorted(r.result for r in records) == list(range(400))
    # The rebuilt index knows the queue again (housekeeping reclaims its leases).
    assert QUEUE in await engine.dispatcher.queues()


async def test_task_whose_enqueue_never_reached_redis_is_dispatched(
    engine: Engine, workers: WorkerHarness, housekeeping: Housekeeper
) -> None:
    spec = validate_submission({"queue": "jobs", "handler": "noop"})
    defaults = await engine.defaults_for(QUEUE)
    now = utcnow()
    orphan = NewTask(new_task_id(), spec, TaskState.QUEUED, now, now, 3, defaults.retry)
    await engine.store.insert([orphan])  # committed, as if the API crashed before Redis
    router = Router()

    @router.task("noop")
    async def noop(ctx: TaskContext, payload: None) -> str:
        return "found"

    workers.start(router)
    task = await wait_for(engine, orphan.id)
    assert task.state == TaskState.SUCCEEDED and task.result == "found"


async def test_retention_deletes_old_finished_tasks(
    settings: Settings, engine: Engine, submit: Submit
) -> None:
    finished = await submit("noop")
    pending = await submit("noop")
    await engine.cancel(finished)
    from dataclasses import replace

    engine.settings = replace(settings, retention_seconds=0.001)
    await asyncio.sleep(0.01)  # let the cancelled task age past the 1 ms retention
    report = await Housekeeper(engine).sweep_once()
    assert report.deleted == 1
    assert [t.id for t in await engine.store.get_many([finished, pending])] == [pending]


async def test_a_lost_lease_does_not_use_up_a_retry(
    engine: Engine, workers: WorkerHarness, submit: Submit, housekeeping: Housekeeper
) -> None:
    task_id = await submit("noop", max_retries=1)
    ghost = await engine.dispatcher.claim(QUEUE, 1, lease_ms=300, worker="ghost")
    assert len(ghost.tasks) == 1  # claimed, then the worker vanishes
    seen: list[tuple[int, int, bool]] = []
    router = Router()

    @router.task("noop")
    async def noop(ctx: TaskContext, payload: None) -> None:
        seen.append((ctx.attempt, ctx.failures, ctx.is_last_attempt))

    workers.start(router)
    assert (await wait_for(engine, task_id)).state == TaskState.SUCCEEDED
    assert seen == [(2, 0, False)]


async def test_tasks_parked_by_an_older_version_run_after_the_upgrade(
    engine: Engine, workers: WorkerHarness, submit: Submit
) -> None:
    from taskflow.keys import QueueKeys

    task_id = await submit("noop")
    # Redis as an older version left it: the task parked in a per-key set nothing reads now,
    # still known to the queue's data hash (so no sweep would have dispatched it again).
    keys = QueueKeys(QUEUE)
    redis = engine.dispatcher.redis
    assert await redis.zrem(keys.ready, task_id) == 1
    await redis.zadd(f"{keys.base}:cwait:tenant-7", {task_id: 0})
    await redis.hincrby(keys.stats, "parked", 1)
    assert (await engine.dispatcher.known(QUEUE, [task_id])) == [True]

    router = Router()

    @router.task("noop")
    async def noop(ctx: TaskContext, payload: None) -> str:
        return "ran"

    workers.start(router)
    keeper = Housekeeper(engine)
    stop = asyncio.Event()
    sweeping = asyncio.create_task(keeper.run(stop))
    try:
        task = await wait_for(engine, task_id)
    finally:
        stop.set()
        await sweeping
    assert task.state == TaskState.SUCCEEDED and task.result == "ran"
    assert not await redis.exists(f"{keys.base}:cwait:tenant-7")
    assert int(await redis.hget(keys.stats, "parked") or 0) == 0
