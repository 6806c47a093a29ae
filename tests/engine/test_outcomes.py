"""Whatever a handler returns, raises or reports, and however it ignores being stopped, every
outcome is recorded once, the other tasks go on, and the worker keeps its capacity honest."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import replace
from typing import Any

import pytest

from taskflow.config import Settings
from taskflow.engine import Engine
from taskflow.errors import STORE_ERRORS
from taskflow.models import Outcome, TaskState
from taskflow.queue.dispatch import Dispatcher
from taskflow.recovery import dispatch_unknown
from taskflow.worker_session import AttemptEnd, LeaseEvents, WorkerSession
from taskflow_worker import Router, TaskContext
from tests.engine.conftest import QUEUE, Submit, WorkerHarness, eventually, wait_for

POISON: dict[str, tuple[Any, str]] = {
    "nan": (float("nan"), "result is not valid JSON: NaN"),
    "inf": (float("inf"), "result is not valid JSON: Infinity"),
    "minus_inf": ([1, {"x": float("-inf")}], "result is not valid JSON: -Infinity"),
    "nul": ({"text": "a\x00b"}, "result contains a string with a NUL character"),
    "nul_key": ({"k\x00": 1}, "result contains a string with a NUL character"),
    "surrogate": ("\ud800", "result contains a string with an unpaired surrogate"),
    "not_json": ({1, 2}, "result is not JSON: Object of type set is not JSON serializable"),
    "too_big": ("x" * 300_000, "result is 300002 bytes, over the limit of 262144 bytes"),
}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return replace(settings, max_result_bytes=256 * 1024)


async def test_results_that_cannot_be_stored_fail_alone(
    engine: Engine, workers: WorkerHarness, submit: Submit
) -> None:
    router = Router()

    @router.task("poison")
    async def poison(ctx: TaskContext, payload: str) -> Any:
        return POISON[payload][0]

    @router.task("fine")
    async def fine(ctx: TaskContext, payload: int) -> int:
        ctx.progress(0.5, "bad \x00 text \ud800 here")
        return payload

    @router.task("raises")
    def raises(ctx: TaskContext, payload: None) -> None:
        raise ValueError("bad \x00 message \udcff")

    bad = {name: await submit("poison", name, max_retries=0) for name in POISON}
    good = [await submit("fine", i) for i in range(60)]
    raised = await submit("raises", max_retries=0)
    workers.start(router, concurrency=20)
    for name, task_id in bad.items():
        task = await wait_for(engine, task_id)
        assert task.state is TaskState.FAILED, name
        assert task.error is not None and task.error.startswith(POISON[name][1]), task.error
        assert task.result is None
        assert [a.outcome for a in task.attempt_history] == ["failed"]
    for i, task_id in enumerate(good):
        task = await wait_for(engine, task_id)
        assert (task.state, task.result, task.attempts) == (TaskState.SUCCEEDED, i, 1)
        assert task.progress_message == "bad \\x00 text \ufffd here"
    task = await wait_for(engine, raised)
    assert task.state is TaskState.FAILED
    assert task.error == "ValueError: bad \\x00 message \ufffd"
    assert task.traceback is not None and "\x00" not in task.traceback
    # the worker is not wedged: a fresh task goes straight through
    assert (await wait_for(engine, await submit("fine", 7), timeout=10)).result == 7


async def test_sync_handlers_that_ignore_cancel_keep_their_slots(
    engine: Engine, workers: WorkerHarness, submit: Submit
) -> None:
    router = Router()
    wedged = threading.Event()
    running = threading.Semaphore(0)

    @router.task("stubborn")
    def stubborn(ctx: TaskContext, payload: None) -> None:
        running.release()
        wedged.wait(timeout=30)  # never looks at ctx.cancelled

    @router.task("quick")
    def quick(ctx: TaskContext, payload: int) -> int:
        return payload

    stuck = [await submit("stubborn") for _ in range(4)]
    worker = workers.start(router, concurrency=4)
    for _ in range(4):
        await asyncio.to_thread(running.acquire, True, 20)
    for task_id in stuck:
        await engine.cancel(task_id)
    for task_id in stuck:
        assert (await wait_for(engine, task_id)).state is TaskState.CANCELLED

    async def all_abandoned() -> bool:
        return worker.abandoned == 4

    await eventually(all_abandoned, what="4 abandoned handlers")
    claimed = worker.claimed_total
    quick_ids = [await submit("quick", i, timeout_seconds=5) for i in range(4)]
    # While every thread is busy, nothing more is claimed (nothing could start).
    await asyncio.sleep(0.3)
    assert worker.claimed_total == claimed
    assert [(await engine.get(t)).state for t in quick_ids] == [TaskState.QUEUED] * 4
    wedged.set()
    for i, task_id in enumerate(quick_ids):
        task = await wait_for(engine, task_id)
        assert (task.state, task.result) == (TaskState.SUCCEEDED, i), task.error


async def test_an_async_handler_that_swallows_cancel_times_out_and_keeps_its_slot(
    engine: Engine, workers: WorkerHarness, submit: Submit
) -> None:
    router = Router()
    started = asyncio.Event()
    release = asyncio.Event()

    @router.task("swallow")
    async def swallow(ctx: TaskContext, payload: None) -> str:
        started.set()
        while not release.is_set():
            try:
                await release.wait()
            except asyncio.CancelledError:
                continue
        return "finished anyway"

    task_id = await submit("swallow", timeout_seconds=0.5, max_retries=0)
    worker = workers.start(router, concurrency=1)
    try:
        await asyncio.wait_for(started.wait(), 20)
        task = await wait_for(engine, task_id)
        assert task.state is TaskState.FAILED
        assert [a.outcome for a in task.attempt_history] == ["timeout"]

        async def abandoned() -> bool:
            return worker.abandoned == 1

        await eventually(abandoned, what="the handler to count as abandoned")
    finally:
        release.set()  # else it would outlive the test's event loop

    async def slot_back() -> bool:
        return not worker.inflight

    await eventually(slot_back, what="the slot to come back")


async def test_a_task_finished_while_the_sweep_looked_is_not_dispatched_again(
    engine: Engine, submit: Submit
) -> None:
    task_id = await submit("h")
    session = WorkerSession(
        engine.settings,
        "w",
        engine.store,
        engine.dispatcher,
        engine.dispatcher,
        LeaseEvents(cancel=lambda _: None, lost=lambda _: None),
    )
    try:
        (claim,), _ = await session.claim(QUEUE, 1)
        await session.flushed()
        # The sweep read the pending task (old enough to be checked) ...
        (page,) = await engine.store.get_many([task_id])
        stale = replace(page, updated_at=page.updated_at.replace(year=2000))
        # ... and the task finishes before the sweep looks at Redis.
        done = await session.finish(claim, AttemptEnd(Outcome.SUCCEEDED, result=1), max_retries=0)
        assert done.recorded and done.redis
    finally:
        await session.close(5.0)
    assert await dispatch_unknown(engine, [stale], grace=True) == 0
    assert (await engine.queue_stats(QUEUE)).ready == 0


async def test_redis_errors_on_the_way_out_are_retried(
    engine: Engine, workers: WorkerHarness, submit: Submit, monkeypatch: pytest.MonkeyPatch
) -> None:
    failures = {"left": 3}
    real = Dispatcher.complete

    async def flaky(self: Dispatcher, ref: Any, items: Any) -> list[bool]:
        if failures["left"]:
            failures["left"] -= 1
            raise STORE_ERRORS[1]("injected: connection reset")
        return await real(self, ref, items)

    monkeypatch.setattr(Dispatcher, "complete", flaky)
    router = Router()

    @router.task("fail_once")
    async def fail_once(ctx: TaskContext, payload: None) -> int:
        if ctx.attempt == 1:
            raise RuntimeError("first try fails")
        return ctx.attempt

    ids = [await submit("fail_once", retry={"initial_seconds": 0.01}) for _ in range(5)]
    workers.start(router)
    for task_id in ids:
        task = await wait_for(engine, task_id, timeout=20)
        assert (task.state, task.result, task.failures) == (TaskState.SUCCEEDED, 2, 1)
    assert failures["left"] == 0
    assert (await engine.queue_stats(QUEUE)).running == 0
