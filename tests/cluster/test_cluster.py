"""The engine on a real Redis Cluster: queues on different masters, workers serving several
of them, concurrency limits, cancels; and every script keeps to the keys it declares."""

from __future__ import annotations

import asyncio
import re
from importlib import resources

import redis
from redis.asyncio import RedisCluster

from taskflow.bench.redis_cluster import EmbeddedRedisCluster
from taskflow.engine import Engine
from taskflow.keys import QueueKeys, QueueRef
from taskflow.models import TaskState, validate_submission
from taskflow.queue.scripts import SCRIPT_NAMES, script_keys
from taskflow_worker import Router, TaskContext
from tests.engine.conftest import WorkerHarness, eventually, wait_for

#: Three queues whose hash tags sit on three different masters (checked below).
QUEUES = [QueueRef("default", name) for name in ("emails", "images", "reports")]

#: Redis commands a script may send whose first argument is not a key.
KEYLESS = {"TIME", "PUBLISH"}


def masters_of(cluster: EmbeddedRedisCluster, refs: list[QueueRef]) -> set[str]:
    rc = redis.RedisCluster(host=cluster.host, port=cluster.ports[0])
    try:
        return {rc.get_node_from_key(QueueKeys(r).ready).name for r in refs}
    finally:
        rc.close()


async def submit(engine: Engine, ref: QueueRef, handler: str, **fields: object) -> str:
    spec = validate_submission({"queue": ref.name, "handler": handler, **fields})
    (result,) = await engine.submit([spec])
    return result.task_id


def test_every_key_a_script_touches_is_declared() -> None:
    lua = resources.files("taskflow.queue") / "lua"
    calls = re.compile(r"redis\.call\('(\w+)',\s*([^,)]+)")
    for name in ("_lib", *SCRIPT_NAMES):
        text = (lua / f"{name}.lua").read_text()
        for command, first in calls.findall(text):
            if command.upper() in KEYLESS:
                continue
            assert re.fullmatch(r"K_[A-Z]+", first.strip()), (
                f"{name}.lua: {command} on {first.strip()!r}, not a declared key"
            )
    keys = script_keys(QueueKeys(QueueRef("team-a", "emails")))
    assert len(set(keys)) == len(keys)
    assert all("{team-a/emails}" in k for k in keys)


async def test_tasks_of_queues_on_different_masters_each_run_once(
    engine: Engine, workers: WorkerHarness, redis_cluster: EmbeddedRedisCluster
) -> None:
    assert len(masters_of(redis_cluster, QUEUES)) == 3
    assert isinstance(engine.dispatcher.redis, RedisCluster)
    runs: dict[str, int] = {}
    router = Router()

    @router.task("count")
    async def count(ctx: TaskContext, payload: None) -> str:
        runs[ctx.task_id] = runs.get(ctx.task_id, 0) + 1
        return ctx.queue

    ids = {ref: [await submit(engine, ref, "count") for _ in range(20)] for ref in QUEUES}
    workers.start(router, queues=QUEUES, concurrency=8)
    workers.start(router, queues=QUEUES, concurrency=8)
    for ref, task_ids in ids.items():
        for task_id in task_ids:
            task = await wait_for(engine, task_id)
            assert task.state is TaskState.SUCCEEDED
            assert task.result_json == f'"{ref.name}"'
    assert sorted(runs.values()) == [1] * 60
    for ref in QUEUES:
        stats = await engine.queue_stats(ref)
        assert (stats.ready, stats.running, stats.succeeded) == (0, 0, 20)


async def test_an_idle_worker_wakes_for_a_task_on_any_of_its_queues(
    engine: Engine, workers: WorkerHarness
) -> None:
    router = Router()

    @router.task("noop")
    async def noop(ctx: TaskContext, payload: None) -> None:
        return None

    workers.start(router, queues=QUEUES, concurrency=2)
    for ref in reversed(QUEUES):
        task_id = await submit(engine, ref, "noop")
        assert (await wait_for(engine, task_id)).state is TaskState.SUCCEEDED


async def test_a_concurrency_key_parks_tasks_in_order_and_a_parked_one_can_be_cancelled(
    engine: Engine, workers: WorkerHarness
) -> None:
    ref = QUEUES[1]
    order: list[int] = []
    release = asyncio.Event()
    router = Router()

    @router.task("charge")
    async def charge(ctx: TaskContext, payload: int) -> None:
        order.append(payload)
        if payload == 0:
            await release.wait()

    limited = {"concurrency_key": "account-7", "concurrency_limit": 1}
    first = await submit(engine, ref, "charge", payload=0, **limited)
    workers.start(router, queues=[ref], concurrency=4)
    await eventually(lambda: _async(order == [0]), what="the first charge running")
    parked = [await submit(engine, ref, "charge", payload=n, **limited) for n in (1, 2, 3)]
    await eventually(
        lambda: _parked(engine, ref, 3), what="three tasks parked behind the concurrency key"
    )
    cancelled = await engine.cancel(parked[1])
    assert cancelled.state is TaskState.CANCELLED
    release.set()
    assert (await wait_for(engine, first)).state is TaskState.SUCCEEDED
    for task_id in (parked[0], parked[2]):
        assert (await wait_for(engine, task_id)).state is TaskState.SUCCEEDED
    assert order == [0, 1, 3]
    stats = await engine.queue_stats(ref)
    assert (stats.ready, stats.running, stats.cancelled) == (0, 0, 1)


async def test_a_running_task_is_cancelled_at_once(engine: Engine, workers: WorkerHarness) -> None:
    ref = QUEUES[2]
    started = asyncio.Event()
    router = Router()

    @router.task("long")
    async def long(ctx: TaskContext, payload: None) -> None:
        started.set()
        await asyncio.sleep(60)

    task_id = await submit(engine, ref, "long")
    workers.start(router, queues=[ref], concurrency=1)
    await asyncio.wait_for(started.wait(), 20)
    await engine.cancel(task_id)
    task = await wait_for(engine, task_id, timeout=10)
    assert task.state is TaskState.CANCELLED


async def _async(value: bool) -> bool:
    return value


async def _parked(engine: Engine, ref: QueueRef, n: int) -> bool:
    return (await engine.queue_stats(ref)).ready == n
