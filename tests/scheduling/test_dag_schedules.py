"""Schedules that fire a whole DAG run: once per tick, keyed by it, with the concurrency
policy looking at the previous fire's run; through the scheduler, the API and a file."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from taskflow.config import Settings
from taskflow.engine import Engine
from taskflow.scheduling import Scheduler, ScheduleService
from taskflow.scheduling.files import load_schedule_file
from taskflow.scheduling.models import tick_key, validate_schedule
from taskflow.workflows.service import DagService
from taskflow_worker import Router, TaskContext
from tests.engine.conftest import WorkerHarness, eventually
from tests.scheduling.conftest import QUEUE, FakeClock, at, reload

DAG = {
    "queue": QUEUE,
    "failure_policy": "continue",
    "steps": [
        {"name": "extract", "handler": "step", "payload": {"table": "orders"}},
        {"name": "load", "handler": "step", "depends_on": ["extract"]},
    ],
}


def dag_schedule(**kw: Any) -> Any:
    return validate_schedule(
        namespace="default",
        name=kw.pop("name", "etl"),
        cron=kw.pop("cron", "0 * * * *"),
        kind="dag",
        target=kw.pop("target", DAG),
        **kw,
    )


@pytest.fixture
async def workers(settings: Settings) -> AsyncIterator[WorkerHarness]:
    harness = WorkerHarness(settings)
    yield harness
    await harness.stop_all()


async def runs_of(dags: DagService) -> list[Any]:
    runs, _, _ = await dags.list(namespace="default", states=[], page_size=100, page_token=None)
    return [await dags.get(r.id) for r in reversed(runs)]


async def test_each_tick_starts_one_run_keyed_by_it(
    engine: Engine,
    service: ScheduleService,
    clock: FakeClock,
    new_scheduler: Callable[[], Scheduler],
) -> None:
    put = await service.put(dag_schedule())
    dags = DagService(engine)
    clock.set(at("2024-06-03 10:00:00"))
    first, second = new_scheduler(), new_scheduler()
    reports = await asyncio.gather(first.run_once(), second.run_once())  # racing schedulers
    assert sum(r.fired for r in reports) == 1
    (run,) = await runs_of(dags)
    assert run.idempotency_key == tick_key(put.record.id, at("2024-06-03 10:00"))
    assert run.labels["taskflow.dev/schedule"] == "etl"
    assert [s.name for s in run.steps] == ["extract", "load"]
    assert [s.state for s in run.steps] == ["queued", "waiting"]
    record = await reload(service, "etl")
    assert (record.fire_count, record.last_task_id) == (1, run.id)
    clock.set(at("2024-06-03 11:00:00"))
    assert (await new_scheduler().run_once()).fired == 1
    assert len(await runs_of(dags)) == 2


async def test_forbid_skips_while_the_previous_run_is_unfinished_and_replace_cancels_it(
    engine: Engine,
    service: ScheduleService,
    clock: FakeClock,
    new_scheduler: Callable[[], Scheduler],
) -> None:
    dags = DagService(engine)
    await service.put(dag_schedule(name="etl", concurrency_policy="Forbid"))
    clock.set(at("2024-06-03 10:00:00"))
    assert (await new_scheduler().run_once()).fired == 1
    clock.set(at("2024-06-03 11:00:00"))  # no worker ran it: still running
    report = await new_scheduler().run_once()
    assert (report.fired, report.skipped) == (0, 1)
    record = await reload(service, "etl")
    assert record.last_skip_reason is not None
    assert record.last_skip_reason.startswith("Forbid: the previous fire's run")
    await service.put(dag_schedule(name="etl", concurrency_policy="Replace"))
    clock.set(at("2024-06-03 12:00:00"))
    report = await new_scheduler().run_once()
    assert (report.fired, report.replaced) == (1, 1)
    first, second = await runs_of(dags)
    assert (first.state, second.state) == ("cancelled", "running")


async def test_a_fired_run_runs_on_workers(
    engine: Engine,
    service: ScheduleService,
    clock: FakeClock,
    new_scheduler: Callable[[], Scheduler],
    workers: WorkerHarness,
) -> None:
    router = Router()

    @router.task("step")
    async def step(ctx: TaskContext, payload: Any) -> dict[str, Any]:
        return {"step": ctx.step, "parents": sorted(ctx.parents)}

    await service.put(dag_schedule())
    clock.set(at("2024-06-03 10:00:00"))
    await new_scheduler().run_once()
    workers.start(router)
    dags = DagService(engine)

    async def done() -> bool:
        runs = await runs_of(dags)
        return bool(runs) and runs[0].state == "succeeded"

    await eventually(done, what="the fired run to succeed")
    (run,) = await runs_of(dags)
    assert run.steps[1].task.result == {"step": "load", "parents": ["extract"]}


def test_a_dag_schedule_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "schedules.yaml"
    path.write_text(
        "schedules:\n"
        "  - name: etl\n"
        "    cron: '30 2 * * *'\n"
        "    dag:\n"
        "      queue: etl\n"
        "      steps:\n"
        "        - {name: a, handler: h}\n"
        "        - {name: b, handler: h, depends_on: [a]}\n"
    )
    (spec,) = load_schedule_file(path)
    assert spec.kind == "dag"
    assert [s.name for s in spec.dag().steps] == ["a", "b"]
    path.write_text(
        "schedules:\n  - name: etl\n    cron: '30 2 * * *'\n"
        "    dag: {queue: etl, steps: [{name: a, handler: h, depends_on: [a]}]}\n"
    )
    with pytest.raises(Exception, match=r"schedules\[0\].dag.steps\[0\].depends_on\[0\]"):
        load_schedule_file(path)
