"""Fixtures for engine and worker tests: a migrated engine and in-process workers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Any

import pytest

from taskflow.config import Settings
from taskflow.engine import Engine
from taskflow.housekeeping import Housekeeper
from taskflow.keys import QueueRef
from taskflow.models import TaskRecord, TaskState, validate_submission
from taskflow.store.dags import DagRunRecord
from taskflow.workflows.models import validate_dag
from taskflow.workflows.service import DagService
from taskflow_worker import Router
from taskflow_worker.runtime import Worker, WorkerConfig

QUEUE = QueueRef("default", "jobs")


@pytest.fixture
def settings(redis_url: str, database_url: str) -> Settings:
    return Settings(
        redis_url=redis_url,
        database_url=database_url,
        lease_seconds=2.0,
        sweep_interval=0.2,
        orphan_grace_seconds=0.5,
    )


class WorkerHarness:
    """Starts in-process workers and stops (drains) them at the end of the test."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._running: list[tuple[Worker, asyncio.Event, asyncio.Task[None]]] = []

    def start(
        self,
        router: Router,
        *,
        queues: Sequence[QueueRef] = (QUEUE,),
        concurrency: int = 4,
        drain_grace: float = 5.0,
        settings: Settings | None = None,
        name: str | None = None,
    ) -> Worker:
        config = WorkerConfig(queues=list(queues), concurrency=concurrency, drain_grace=drain_grace)
        if name:
            config = replace(config, name=name)
        worker = Worker(router, settings or self.settings, config)
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        self._running.append((worker, stop, task))
        return worker

    async def stop(self, worker: Worker) -> None:
        for w, stop, task in self._running:
            if w is worker:
                stop.set()
                await task

    async def stop_all(self) -> None:
        for _, stop, _ in self._running:
            stop.set()
        await asyncio.gather(*(t for _, _, t in self._running), return_exceptions=True)


@pytest.fixture
async def workers(settings: Settings) -> AsyncIterator[WorkerHarness]:
    harness = WorkerHarness(settings)
    yield harness
    await harness.stop_all()


Submit = Callable[..., Awaitable[str]]


@pytest.fixture
def submit(engine: Engine) -> Submit:
    async def _submit(handler: str, payload: object = None, **fields: object) -> str:
        spec = validate_submission(
            {"queue": QUEUE.name, "handler": handler, "payload": payload, **fields}
        )
        (result,) = await engine.submit([spec])
        return result.task_id

    return _submit


async def wait_for(
    engine: Engine,
    task_id: str,
    states: Sequence[TaskState] = (TaskState.SUCCEEDED, TaskState.FAILED, TaskState.CANCELLED),
    timeout: float = 20.0,
) -> TaskRecord:
    """Poll PostgreSQL until the task is in one of ``states`` (deadline, not a sleep)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        task = await engine.get(task_id, with_attempts=True)
        if task.state in states:
            return task
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"task {task_id} still {task.state} after {timeout}s: {task}")
        await asyncio.sleep(0.02)


async def eventually(
    check: Callable[[], Awaitable[bool]], timeout: float = 20.0, what: str = "condition"
) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def running(harness: WorkerHarness, router: Router, **kw: object) -> AsyncIterator[Worker]:
    worker = harness.start(router, **kw)  # type: ignore[arg-type]
    try:
        yield worker
    finally:
        await harness.stop(worker)


@pytest.fixture
def dags(engine: Engine) -> DagService:
    return DagService(engine)


@pytest.fixture
async def housekeeping(engine: Engine) -> AsyncIterator[Housekeeper]:
    keeper = Housekeeper(engine)
    stop = asyncio.Event()
    task = asyncio.create_task(keeper.run(stop))
    yield keeper
    stop.set()
    await task


SubmitDag = Callable[..., Awaitable[str]]


@pytest.fixture
def submit_dag(dags: DagService) -> SubmitDag:
    async def _submit(steps: list[dict[str, Any]], **fields: Any) -> str:
        dag = validate_dag({"queue": QUEUE.name, "steps": steps, **fields})
        run_id, created = await dags.submit(dag)
        assert created
        return run_id

    return _submit


async def wait_run(dags: DagService, run_id: str, timeout: float = 30.0) -> DagRunRecord:
    """Poll until the run is done (deadline, not a sleep)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        run = await dags.get(run_id)
        if run.done:
            return run
        if asyncio.get_running_loop().time() > deadline:
            states = {s.name: s.state for s in run.steps}
            raise AssertionError(f"run {run_id} still {run.state} after {timeout}s: {states}")
        await asyncio.sleep(0.02)


def check_order(run: DagRunRecord) -> None:
    """From the records: every step that ran started after each of its parents succeeded, and
    no step was claimed after it had ended (released twice)."""
    by_name = {s.name: s for s in run.steps}
    for step in run.steps:
        for parent in step.depends_on:
            p = by_name[parent].task
            if step.task.started_at is not None:
                assert p.state.value == "succeeded", (step.name, parent, p.state)
                assert p.finished_at is not None and step.task.started_at >= p.finished_at, (
                    f"{step.name} started before its parent {parent} finished"
                )
        outcomes = [a.outcome for a in step.task.attempt_history]
        assert "superseded" not in outcomes, (step.name, outcomes)
