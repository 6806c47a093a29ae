"""A task's life through Redis, a worker and PostgreSQL, as a user sees it."""

from __future__ import annotations

import asyncio
from typing import Any

from taskflow.engine import Engine
from taskflow.models import TaskState
from taskflow_worker import PermanentError, Router, TaskContext
from tests.engine.conftest import Submit, WorkerHarness, eventually, wait_for


async def test_task_runs_and_records_result_and_attempt(
    engine: Engine, workers: WorkerHarness, submit: Submit
) -> None:
    router = Router()

    @router.task("add")
    async def add(ctx: TaskContext, payload: dict[str, int]) -> dict[str, Any]:
        return {"sum": payload["a"] + payload["b"], "attempt": ctx.attempt}

    task_id = await submit("add", {"a": 2, "b": 3})
    workers.start(router)
    task = await wait_for(engine, task_id)
    assert task.state == TaskState.SUCCEEDED
    assert task.result == {"sum": 5, "attempt": 1}
    assert task.attempts == 1
    assert [(a.number, a.outcome) for a in task.attempt_history] == [(1, "succeeded")]
    assert task.started_at is not None and task.finished_at is not None


async def test_sync_handler_runs_in_a_thread_and_reports_progress(
    engine: Engine, workers: WorkerHarness, submit: Submit
) -> None:
    router = Router()
    release = asyncio.Event()
    loop = asyncio.get_running_loop()

    @router.task("resize")
    def resize(ctx: TaskContext, payload: dict[str, int]) -> int:
        ctx.progress(0.5, "half way")
        asyncio.run_coroutine_threadsafe(release.wait(), loop).result(timeout=20)
        return payload["w"] * 2

    task_id = await submit("resize", {"w": 21})
    workers.start(router)

    async def progressed() -> bool:
        t = await engine.get(task_id)
        return t.progress == 0.5 and t.progress_message == "half way"

    from tests.engine.conftest import eventually

    await eventually(progressed, what="progress to be recorded")
    release.set()
    task = await wait_for(engine, task_id)
    assert task.state == TaskState.SUCCEEDED and task.result == 42


async def test_unknown_handler_fails_with_a_clear_error_and_no_retry(
    engine: Engine, workers: WorkerHarness, submit: Submit
) -> None:
    router = Router()

    @router.task("known")
    async def known(ctx: TaskContext, payload: None) -> None:
        return None

    task_id = await submit("missing_handler", max_retries=5)
    workers.start(router)
    task = await wait_for(engine, task_id)
    assert task.state == TaskState.FAILED
    assert task.attempts == 1
    assert task.error is not None
    assert "unknown handler 'missing_handler'" in task.error and "known" in task.error


async def test_exception_retries_then_dead_letters_with_traceback(
    engine: Engine, workers: WorkerHarness, submit: Submit
) -> None:
    router = Router()

    @router.task("boom")
    async def boom(ctx: TaskContext, payload: None) -> None:
        raise ValueError(f"bad input on attempt {ctx.attempt}")

    task_id = await submit(
        "boom", max_retries=2, retry={"initial_seconds": 0.05, "multiplier": 2, "max_seconds": 0.2}
    )
    workers.start(router)
    task = await wait_for(engine, task_id)
    assert task.state == TaskState.FAILED
    assert task.attempts == 3 and task.failures == 3
    assert task.error == "ValueError: bad input on attempt 3"
    assert task.traceback is not None and "raise ValueError" in task.traceback
    assert [a.outcome for a in task.attempt_history] == ["failed"] * 3
    dead, _ = await engine.dead_letters(task.queue_ref, 10, None)
    assert [t.id for t in dead] == [task_id]


async def test_replayed_dead_letter_runs_again(
    engine: Engine, workers: WorkerHarness, submit: Submit
) -> None:
    router = Router()
    healthy = asyncio.Event()

    @router.task("flaky")
    async def flaky(ctx: TaskContext, payload: None) -> str:
        if not healthy.is_set():
            raise RuntimeError("downstream is down")
        return "ok"

    task_id = await submit("flaky", max_retries=0)
    workers.start(router)
    assert (await wait_for(engine, task_id)).state == TaskState.FAILED
    healthy.set()
    queue = (await engine.get(task_id)).queue_ref
    assert (await engine.queue_stats(queue)).dead_letters == 1
    assert await engine.replay(queue, []) == [task_id]
    assert (await engine.queue_stats(queue)).dead_letters == 0
    task = await wait_for(engine, task_id, states=(TaskState.SUCCEEDED,))
    assert task.result == "ok"
    assert [a.outcome for a in task.attempt_history] == ["failed", "succeeded"]


async def test_permanent_error_skips_remaining_retries(
    engine: Engine, workers: WorkerHarness, submit: Submit
) -> None:
    router = Router()

    @router.task("reject")
    async def reject(ctx: TaskContext, payload: None) -> None:
        raise PermanentError("invalid address")

    task_id = await submit("reject", max_retries=5)
    workers.start(router)
    task = await wait_for(engine, task_id)
    assert task.state == TaskState.FAILED and task.attempts == 1
    assert task.error == "PermanentError: invalid address"


async def test_timeout_fails_the_attempt(
    engine: Engine, workers: WorkerHarness, submit: Submit
) -> None:
    router = Router()

    @router.task("slow")
    async def slow(ctx: TaskContext, payload: None) -> None:
        await asyncio.sleep(60)

    task_id = await submit(
        "slow", timeout_seconds=0.2, max_retries=1, retry={"initial_seconds": 0.01}
    )
    workers.start(router)
    task = await wait_for(engine, task_id)
    assert task.state == TaskState.FAILED
    assert [a.outcome for a in task.attempt_history] == ["timeout", "timeout"]
    assert task.error == "timed out after 0.2s"


async def test_handler_retry_limit_applies_when_the_task_sets_none(
    engine: Engine, workers: WorkerHarness, submit: Submit
) -> None:
    router = Router()

    @router.task("once", max_retries=0)
    async def once(ctx: TaskContext, payload: None) -> None:
        raise RuntimeError("no second chance")

    @router.task("twice", max_retries=1)
    async def twice(ctx: TaskContext, payload: None) -> None:
        raise RuntimeError("one more chance")

    handler_default = await submit("once")
    task_overrides = await submit("twice", max_retries=0)
    handler_allows = await submit("twice", retry={"initial_seconds": 0.01})
    workers.start(router)
    assert (await wait_for(engine, handler_default)).attempts == 1
    assert (await wait_for(engine, task_overrides)).attempts == 1
    assert (await wait_for(engine, handler_allows)).attempts == 2


async def test_last_progress_before_returning_is_kept(
    engine: Engine, workers: WorkerHarness, submit: Submit
) -> None:
    router = Router()

    @router.task("report")
    async def report(ctx: TaskContext, payload: None) -> str:
        ctx.progress(0.5, "half")
        ctx.progress(1.0, "uploaded")
        return "done"

    task_id = await submit("report")
    workers.start(router)
    await wait_for(engine, task_id)

    async def final_progress() -> bool:
        task = await engine.get(task_id)
        return (task.progress, task.progress_message) == (1.0, "uploaded")

    await eventually(final_progress, what="the last progress report to be recorded")


async def test_retry_is_scheduled_within_the_backoff_ceiling(
    engine: Engine, workers: WorkerHarness, submit: Submit
) -> None:
    router = Router()

    @router.task("wobbly")
    async def wobbly(ctx: TaskContext, payload: None) -> int:
        if ctx.attempt == 1:
            raise RuntimeError("first try fails")
        return ctx.attempt

    # initial 3 s, multiplier 1: the retry is due somewhere in [0, 3] s after the failure.
    task_id = await submit(
        "wobbly", retry={"initial_seconds": 3, "multiplier": 1, "max_seconds": 3}
    )
    workers.start(router)

    async def retry_recorded() -> bool:
        # The failed attempt and the retry's due time are written in one transaction; the
        # due time stays on the task even if the retry already ran (a short jitter draw).
        task = await engine.get(task_id, with_attempts=True)
        return bool(task.attempt_history) and task.attempt_history[0].outcome == "failed"

    await eventually(retry_recorded, what="the failed attempt to be recorded")
    task = await engine.get(task_id, with_attempts=True)
    failed_at = task.attempt_history[0].finished_at
    assert task.run_at is not None and failed_at is not None
    delay = (task.run_at - failed_at).total_seconds()
    assert -0.01 <= delay <= 3.01, delay
    assert task.attempt_history[0].error == "RuntimeError: first try fails"
    assert task.state in (TaskState.RETRYING, TaskState.RUNNING, TaskState.SUCCEEDED)
    done = await wait_for(engine, task_id)
    assert done.state == TaskState.SUCCEEDED and done.result == 2
    assert done.error is None and done.traceback is None  # a success clears the last error


async def test_a_running_worker_announces_itself_and_leaves_when_it_stops(
    engine: Engine, workers: WorkerHarness, submit: Submit
) -> None:
    router = Router()

    @router.task("noop")
    async def noop(ctx: TaskContext, payload: None) -> None:
        return None

    worker = workers.start(router, concurrency=3, name="announced")
    await wait_for(engine, await submit("noop"))

    async def announced() -> bool:
        found = [w for w in await engine.workers() if w.name == "announced"]
        return bool(found) and found[0].finished >= 1

    await eventually(announced, what="the worker's announcement")
    (status,) = [w for w in await engine.workers() if w.name == "announced"]
    assert (status.concurrency, status.queues) == (3, ("default/jobs",))
    await workers.stop(worker)
    assert [w.name for w in await engine.workers()] == []
