"""A worker whose outcomes are recorded slowly stops claiming: it never holds more than
``HELD_PER_SLOT`` claims per slot, counting those still being recorded."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from taskflow.engine import Engine
from taskflow.models import TaskState
from taskflow.store.tasks import TaskStore
from taskflow_worker import Router, TaskContext
from taskflow_worker.runtime import HELD_PER_SLOT
from tests.engine.conftest import Submit, WorkerHarness, eventually


async def test_a_worker_with_slow_recording_holds_at_most_two_claims_per_slot(
    engine: Engine, workers: WorkerHarness, submit: Submit, monkeypatch: pytest.MonkeyPatch
) -> None:
    router = Router()

    @router.task("quick")
    async def quick(ctx: TaskContext, payload: Any) -> None:
        return None

    gate = asyncio.Event()
    real = TaskStore.record_batch

    async def slow_results(self: TaskStore, claims: Any, results: Any, *a: Any) -> Any:
        if results:  # claims are recorded; outcomes wait until the gate opens
            await gate.wait()
        return await real(self, claims, results, *a)

    monkeypatch.setattr(TaskStore, "record_batch", slow_results)
    ids = [await submit("quick") for _ in range(60)]
    worker = workers.start(router, concurrency=4)
    peak = 0

    async def watch() -> None:
        nonlocal peak
        while True:
            if worker._session is not None:
                peak = max(peak, worker._session.held)
            await asyncio.sleep(0.001)

    watcher = asyncio.create_task(watch())
    try:

        async def claimed_enough() -> bool:
            return worker.claimed_total >= HELD_PER_SLOT * 4

        await eventually(claimed_enough)
        await asyncio.sleep(0.5)  # time enough to claim all 60 without the limit
        assert worker.claimed_total == HELD_PER_SLOT * 4 == worker.max_held
        assert peak <= worker.max_held
        gate.set()

        async def all_done() -> bool:
            tasks = await engine.get_many(ids)
            return all(t.state is TaskState.SUCCEEDED for t in tasks.values())

        await eventually(all_done, timeout=30)
        assert peak <= worker.max_held
        assert worker.claimed_total == 60
    finally:
        watcher.cancel()
