"""The scheduler on real PostgreSQL and Redis, with a clock the test moves: each tick fires
once, missed ticks are coalesced, racing schedulers and killed ones fire nothing twice, and
the concurrency policies act on the previous fire's task as it really runs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta

import pytest

from taskflow.config import Settings
from taskflow.engine import Engine
from taskflow.errors import AlreadyExists
from taskflow.models import TaskState
from taskflow.scheduling import Scheduler, ScheduleService
from taskflow.scheduling.models import tick_key
from taskflow.scheduling.store import Claim
from taskflow_worker import Router, TaskContext
from tests.engine.conftest import QUEUE, WorkerHarness, eventually, wait_for
from tests.scheduling.conftest import FakeClock, at, fired_tasks, reload, schedule

NewScheduler = Callable[[], Scheduler]


@pytest.fixture
async def workers(settings: Settings) -> AsyncIterator[WorkerHarness]:
    harness = WorkerHarness(settings)
    yield harness
    await harness.stop_all()


async def test_a_tick_fires_once_at_its_time(
    engine: Engine, service: ScheduleService, clock: FakeClock, new_scheduler: NewScheduler
) -> None:
    put = await service.put(schedule(cron="0 * * * *", task={**_task(), "priority": 7}))
    assert put.created and put.record.next_fire_at == at("2024-06-03 10:00")
    scheduler = new_scheduler()
    assert (await scheduler.run_once()).fired == 0  # 09:59:30: not yet
    clock.set(at("2024-06-03 10:00:00"))
    assert (await scheduler.run_once()).fired == 1
    assert (await scheduler.run_once()).fired == 0
    (task,) = await fired_tasks(engine)
    assert (task.queue, task.handler, task.payload, task.priority) == ("jobs", "build", {"n": 1}, 7)
    assert task.idempotency_key == f"schedule:{put.record.id}:2024-06-03T10:00:00Z"
    assert task.labels == {
        "taskflow.dev/schedule": "report",
        "taskflow.dev/tick": "2024-06-03T10:00:00Z",
    }
    record = await reload(service)
    assert record.fire_count == 1 and record.skip_count == 0
    assert record.last_task_id == task.id
    assert record.last_fire_tick == at("2024-06-03 10:00")
    assert record.last_fired_at == clock.now()
    assert record.next_fire_at == at("2024-06-03 11:00")


async def test_missed_ticks_fire_once_when_the_scheduler_comes_back(
    engine: Engine, service: ScheduleService, clock: FakeClock, new_scheduler: NewScheduler
) -> None:
    await service.put(schedule(cron="0 * * * *"))
    clock.set(at("2024-06-03 15:20"))  # 10:00 .. 15:00 passed while no scheduler ran
    record = await reload(service)
    assert record.upcoming(clock.now()) == at("2024-06-03 15:00")  # overdue: what fires next
    report = await new_scheduler().run_once()
    assert report.fired == 1
    assert (await new_scheduler().run_once()).fired == 0
    (task,) = await fired_tasks(engine)
    assert task.labels["taskflow.dev/tick"] == "2024-06-03T15:00:00Z"
    record = await reload(service)
    assert (record.fire_count, record.skip_count) == (1, 0)
    assert record.next_fire_at == at("2024-06-03 16:00")


async def _run_through(
    scheduler: Scheduler, clock: FakeClock, start: datetime, end: datetime, step: timedelta
) -> None:
    clock.set(start)
    while clock.now() < end:
        clock.advance(seconds=step.total_seconds())
        await scheduler.run_once()


@pytest.mark.parametrize(
    ("cron", "start", "end", "expected"),
    [
        # Clocks jump from 02:00 to 03:00: 02:30 fires once, at 03:00 EDT.
        (
            "30 2 * * *",
            "2024-03-09 12:00",
            "2024-03-11 12:00",
            ["2024-03-10T07:00:00Z", "2024-03-11T06:30:00Z"],
        ),
        # Clocks go back from 02:00 to 01:00: 01:30 fires at 01:30 EDT, not again at EST.
        (
            "30 1 * * *",
            "2024-11-02 12:00",
            "2024-11-04 12:00",
            ["2024-11-03T05:30:00Z", "2024-11-04T06:30:00Z"],
        ),
    ],
    ids=["spring-forward", "fall-back"],
)
async def test_a_daylight_saving_change_fires_each_wall_clock_time_once(
    engine: Engine,
    service: ScheduleService,
    clock: FakeClock,
    new_scheduler: NewScheduler,
    cron: str,
    start: str,
    end: str,
    expected: list[str],
) -> None:
    zone = "America/New_York"
    clock.set(at(start, zone))
    await service.put(schedule(cron=cron, timezone=zone))
    await _run_through(
        new_scheduler(), clock, at(start, zone), at(end, zone), timedelta(minutes=10)
    )
    fired = [t.labels["taskflow.dev/tick"] for t in await fired_tasks(engine)]
    assert fired == expected
    assert (await reload(service)).fire_count == len(expected)


async def test_two_schedulers_racing_fire_each_tick_once(
    engine: Engine, settings: Settings, service: ScheduleService, clock: FakeClock
) -> None:
    names = [f"s{i}" for i in range(20)]
    for name in names:
        await service.put(schedule(name=name, cron="* * * * *"))
    other_engine = await Engine.connect(settings)  # its own connections, as another process
    try:
        one, two = Scheduler(engine, clock=clock), Scheduler(other_engine, clock=clock)
        fired = 0
        for _ in range(5):
            clock.advance(minutes=1)
            reports = await asyncio.gather(one.run_once(), two.run_once())
            fired += sum(r.fired for r in reports)
    finally:
        await other_engine.close()
    assert fired == 100
    for name in names:
        tasks = await fired_tasks(engine, name)
        ticks = [t.labels["taskflow.dev/tick"] for t in tasks]
        assert len(ticks) == len(set(ticks)) == 5, (name, ticks)
        assert (await reload(service, name)).fire_count == 5


async def test_a_scheduler_killed_after_claiming_a_tick(
    engine: Engine, service: ScheduleService, clock: FakeClock, new_scheduler: NewScheduler
) -> None:
    record = (await service.put(schedule(cron="0 * * * *"))).record
    tick = at("2024-06-03 10:00")
    clock.set(tick + timedelta(seconds=1))
    # The first scheduler wrote its intent and died before submitting.
    assert await service.store.claim([Claim(record.id, record.revision, tick, None)])
    clock.advance(minutes=75)  # even after the next tick passed, the claimed one completes
    assert (await new_scheduler().run_once()).fired == 1
    ticks = [t.labels["taskflow.dev/tick"] for t in await fired_tasks(engine)]
    assert ticks == ["2024-06-03T10:00:00Z"]
    after = await reload(service)
    assert after.pending_tick is None and after.fire_count == 1
    assert (await new_scheduler().run_once()).fired == 1  # then 11:00, the latest, once
    assert (await reload(service)).fire_count == 2


async def test_a_scheduler_killed_after_submitting(
    engine: Engine, service: ScheduleService, clock: FakeClock, new_scheduler: NewScheduler
) -> None:
    record = (await service.put(schedule(cron="0 * * * *"))).record
    tick = at("2024-06-03 10:00")
    clock.set(tick)
    assert await service.store.claim([Claim(record.id, record.revision, tick, None)])
    (submitted,) = await engine.submit([record.spec.submission(record.id, tick)])
    # ...and died before recording the fire.
    assert (await new_scheduler().run_once()).fired == 1
    (task,) = await fired_tasks(engine)
    assert task.id == submitted.task_id
    assert task.idempotency_key == tick_key(record.id, tick)
    assert (await reload(service)).last_task_id == task.id


@pytest.fixture
def gate() -> asyncio.Event:
    return asyncio.Event()


def _task(handler: str = "build") -> dict[str, object]:
    return {"queue": QUEUE.name, "handler": handler, "payload": {"n": 1}}


def _router(gate: asyncio.Event) -> Router:
    router = Router()

    @router.task("build")
    async def build(ctx: TaskContext, payload: object) -> str:
        await gate.wait()
        return "built"

    return router


async def _running(engine: Engine, task_id: str) -> None:
    await wait_for(engine, task_id, states=(TaskState.RUNNING,))


async def test_forbid_skips_ticks_while_the_previous_fire_runs(
    engine: Engine,
    service: ScheduleService,
    clock: FakeClock,
    new_scheduler: NewScheduler,
    workers: WorkerHarness,
    gate: asyncio.Event,
) -> None:
    workers.start(_router(gate))
    await service.put(schedule(cron="* * * * *", concurrency_policy="Forbid", task=_task()))
    scheduler = new_scheduler()
    clock.set(at("2024-06-03 10:00"))
    assert (await scheduler.run_once()).fired == 1
    (first,) = await fired_tasks(engine)
    await _running(engine, first.id)
    for minute in (1, 2):
        clock.set(at(f"2024-06-03 10:0{minute}"))
        report = await scheduler.run_once()
        assert (report.fired, report.skipped) == (0, 1)
    record = await reload(service)
    assert (record.fire_count, record.skip_count) == (1, 2)
    assert record.last_skip_tick == at("2024-06-03 10:02")
    assert record.last_skip_reason == (
        f"Forbid: the previous fire's task {first.id} is still running"
    )
    gate.set()
    await wait_for(engine, first.id, states=(TaskState.SUCCEEDED,))
    clock.set(at("2024-06-03 10:03"))
    assert (await scheduler.run_once()).fired == 1
    assert len(await fired_tasks(engine)) == 2


async def test_replace_cancels_the_previous_fire(
    engine: Engine,
    service: ScheduleService,
    clock: FakeClock,
    new_scheduler: NewScheduler,
    workers: WorkerHarness,
    gate: asyncio.Event,
) -> None:
    workers.start(_router(gate))
    await service.put(schedule(cron="* * * * *", concurrency_policy="Replace", task=_task()))
    scheduler = new_scheduler()
    clock.set(at("2024-06-03 10:00"))
    await scheduler.run_once()
    (first,) = await fired_tasks(engine)
    await _running(engine, first.id)
    clock.set(at("2024-06-03 10:01"))
    report = await scheduler.run_once()
    assert (report.fired, report.replaced) == (1, 1)
    first_now, second = await fired_tasks(engine)
    assert first_now.id == first.id and first_now.state == TaskState.CANCELLED
    assert second.state != TaskState.CANCELLED
    await _running(engine, second.id)  # the worker let go of the cancelled one
    assert (await reload(service)).last_task_id == second.id
    gate.set()
    await wait_for(engine, second.id, states=(TaskState.SUCCEEDED,))


async def test_allow_fires_while_the_previous_fire_waits(
    engine: Engine, service: ScheduleService, clock: FakeClock, new_scheduler: NewScheduler
) -> None:
    await service.put(schedule(cron="* * * * *"))  # Allow; no worker: every task stays queued
    scheduler = new_scheduler()
    for minute in range(3):
        clock.set(at(f"2024-06-03 10:0{minute}"))
        assert (await scheduler.run_once()).fired == 1
    assert [t.state for t in await fired_tasks(engine)] == [TaskState.QUEUED] * 3


async def test_a_tick_later_than_the_starting_deadline_is_skipped_and_counted(
    engine: Engine, service: ScheduleService, clock: FakeClock, new_scheduler: NewScheduler
) -> None:
    await service.put(schedule(cron="0 * * * *", starting_deadline_seconds=120))
    clock.set(at("2024-06-03 10:05"))
    report = await new_scheduler().run_once()
    assert (report.fired, report.skipped) == (0, 1)
    record = await reload(service)
    assert record.skip_count == 1 and record.fire_count == 0
    assert record.last_skip_reason == (
        "missed: 300s late, more than starting_deadline_seconds (120)"
    )
    assert record.next_fire_at == at("2024-06-03 11:00")
    clock.set(at("2024-06-03 11:01:59"))
    assert (await new_scheduler().run_once()).fired == 1
    assert len(await fired_tasks(engine)) == 1


async def test_suspended_schedules_do_not_fire_and_resume_with_the_latest_missed_tick(
    engine: Engine, service: ScheduleService, clock: FakeClock, new_scheduler: NewScheduler
) -> None:
    await service.put(schedule(cron="0 * * * *", suspend=True))
    scheduler = new_scheduler()
    clock.set(at("2024-06-03 12:30"))
    assert (await scheduler.run_once()).fired == 0
    assert (await reload(service)).upcoming(clock.now()) is None
    resumed = await service.set_suspended("default", "report", False)
    assert resumed.upcoming(clock.now()) == at("2024-06-03 12:00")
    assert (await scheduler.run_once()).fired == 1  # 10:00, 11:00, 12:00 missed: one fire
    (task,) = await fired_tasks(engine)
    assert task.labels["taskflow.dev/tick"] == "2024-06-03T12:00:00Z"
    # With a starting deadline, ticks missed while suspended are skipped instead.
    await service.put(schedule(cron="0 * * * *", suspend=True, starting_deadline_seconds=60))
    clock.set(at("2024-06-03 15:30"))
    await service.set_suspended("default", "report", False)
    report = await scheduler.run_once()
    assert (report.fired, report.skipped) == (0, 1)


async def test_updates_keep_or_restart_the_ticks(
    service: ScheduleService, clock: FakeClock
) -> None:
    first = await service.put(schedule(cron="0 * * * *"))
    same = await service.put(schedule(cron="0 * * * *"))
    assert (same.created, same.changed, same.record.revision) == (False, False, 1)
    clock.set(at("2024-06-03 10:30"))  # the 10:00 tick is overdue
    payload = await service.put(schedule(cron="0 * * * *", task={**_task(), "priority": 2}))
    assert payload.changed and payload.record.revision == 2
    assert payload.record.next_fire_at == first.record.next_fire_at  # still fires 10:00
    moved = await service.put(schedule(cron="45 * * * *"))
    assert moved.record.next_fire_at == at("2024-06-03 10:45")  # anew, from now
    zoned = await service.put(schedule(cron="45 * * * *", timezone="Asia/Kolkata"))
    assert zoned.record.next_fire_at == at("2024-06-03 11:15")  # :45 at UTC+05:30
    with pytest.raises(AlreadyExists, match=r"managed by the API, not by 'file:/x\.yaml'"):
        await service.put(schedule(cron="45 * * * *", owner="file:/x.yaml"))


async def test_syncing_a_file_s_set_prunes_what_it_no_longer_declares(
    service: ScheduleService,
) -> None:
    owner = "file:/srv/schedules.yaml"
    await service.put(schedule(name="by-api"))
    first = await service.sync(owner, [schedule(name=n, owner=owner) for n in ("a", "b", "c")])
    assert (first.created, first.deleted) == (["default/a", "default/b", "default/c"], [])
    second = await service.sync(
        owner, [schedule(name="a", owner=owner), schedule(name="c", cron="@daily", owner=owner)]
    )
    assert (second.unchanged, second.updated, second.deleted) == (
        ["default/a"],
        ["default/c"],
        ["default/b"],
    )
    names = [r.name for r in (await service.list_page(None))[0]]
    assert names == ["a", "by-api", "c"]
    with pytest.raises(AlreadyExists, match="managed by the API"):
        await service.sync(owner, [schedule(name="by-api", owner=owner)])
    assert [r.name for r in (await service.list_page(None))[0]] == ["a", "by-api", "c"]


async def test_the_loop_fires_when_the_clock_reaches_a_tick(
    engine: Engine, service: ScheduleService, clock: FakeClock
) -> None:
    scheduler = Scheduler(engine, clock=clock, recheck=0.05)
    stop = asyncio.Event()
    loop = asyncio.create_task(scheduler.run(stop))
    try:
        await service.put(schedule(cron="0 * * * *"))  # created while the loop runs
        clock.set(at("2024-06-03 10:00"))

        async def fired() -> bool:
            return (await reload(service)).fire_count == 1

        await eventually(fired, what="the 10:00 tick to fire")
    finally:
        stop.set()
        await loop
    assert len(await fired_tasks(engine)) == 1


async def test_schedules_of_a_kind_this_version_does_not_know_are_left_alone(
    engine: Engine, service: ScheduleService, clock: FakeClock, new_scheduler: NewScheduler
) -> None:
    record = (await service.put(schedule(cron="* * * * *"))).record
    async with engine.store.pool.connection() as conn:
        await conn.execute(
            "UPDATE schedules SET kind = 'dag', spec = '{\"steps\": []}' WHERE id = %s",
            (record.id,),
        )
    clock.advance(minutes=5)
    assert (await new_scheduler().run_once()).fired == 0
    assert (await reload(service)).spec.kind == "dag"


async def test_a_payload_over_the_limit_is_refused_when_the_schedule_is_put(
    service: ScheduleService,
) -> None:
    from taskflow.errors import PayloadTooLarge

    big = {**_task(), "payload": "x" * (2 * 1024 * 1024)}
    with pytest.raises(PayloadTooLarge, match=r"schedule\.task\.payload_json"):
        await service.put(schedule(task=big))


async def test_a_tick_fires_while_redis_is_down_and_is_dispatched_later(
    engine: Engine, settings: Settings, service: ScheduleService, clock: FakeClock
) -> None:
    from dataclasses import replace

    from taskflow.embedded import free_port
    from taskflow.housekeeping import Housekeeper

    await service.put(schedule(cron="0 * * * *"))
    no_redis = await Engine.connect(
        replace(settings, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    )
    try:
        clock.set(at("2024-06-03 10:00"))
        assert (await Scheduler(no_redis, clock=clock).run_once()).fired == 1
    finally:
        await no_redis.close()
    (task,) = await fired_tasks(engine)
    assert task.state == TaskState.QUEUED  # durable in PostgreSQL, unknown to Redis
    assert not (await engine.dispatcher.known(QUEUE, [task.id]))[0]
    report = await Housekeeper(engine).sweep_once()  # what housekeeping does anyway
    assert report.redispatched == 1
    assert (await engine.dispatcher.known(QUEUE, [task.id]))[0]


async def test_a_schedule_that_cannot_be_submitted_does_not_hold_up_the_others(
    engine: Engine,
    service: ScheduleService,
    clock: FakeClock,
    new_scheduler: NewScheduler,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from taskflow.errors import PayloadTooLarge

    for name in ("a", "b", "poison", "stale"):
        await service.put(schedule(name=name, cron="0 * * * *", task=_task(name)))
    # A spec that no longer validates (written by hand, or by an older version)...
    async with engine.store.pool.connection() as conn:
        await conn.execute(
            "UPDATE schedules SET spec = spec || '{\"priority\": 5000}' WHERE name = 'stale'"
        )
    # ...and one the engine refuses (a fault injected into the batch submission).
    submit = engine.submit

    async def refusing(specs):  # type: ignore[no-untyped-def]
        if any(s.handler == "poison" for s in specs):
            raise PayloadTooLarge("tasks[2].payload", 10, 1)
        return await submit(specs)

    monkeypatch.setattr(engine, "submit", refusing)
    clock.set(at("2024-06-03 10:00"))
    report = await new_scheduler().run_once()
    assert (report.fired, report.skipped) == (2, 2)
    assert {t.handler for t in await fired_tasks(engine, "a") + await fired_tasks(engine, "b")} == {
        "a",
        "b",
    }
    for name, problem in (("poison", "exceeds the limit"), ("stale", "less than or equal")):
        record = await reload(service, name)
        assert (record.fire_count, record.skip_count, record.pending_tick) == (0, 1, None)
        assert record.last_skip_reason is not None and problem in record.last_skip_reason
        assert record.last_skip_reason.startswith("the task could not be submitted: ")
        assert record.next_fire_at == at("2024-06-03 11:00")


async def test_the_loop_does_not_spin_on_a_schedule_it_cannot_handle(
    engine: Engine,
    service: ScheduleService,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    scheduler = Scheduler(engine, clock=clock, recheck=1.0, batch=2)
    await service.put(schedule(name="a", cron="0 * * * *"))
    clock.set(at("2024-06-03 09:59:59.750"))
    report = await scheduler.run_once()
    assert await scheduler.pause_after(report) == pytest.approx(0.25)  # until the 10:00 tick
    clock.set(at("2024-06-03 10:00"))

    async def broken(*args: object) -> None:
        raise RuntimeError("cannot")

    monkeypatch.setattr(scheduler, "_decide", broken)
    report = await scheduler.run_once()
    assert report.looked_at == 1 and not report.acted
    assert await scheduler.pause_after(report) == 1.0  # due, no progress: no busy loop
    monkeypatch.undo()
    for name in ("b", "c"):
        await service.put(schedule(name=name, cron="0 * * * *"))
    clock.set(at("2024-06-03 11:00"))
    report = await scheduler.run_once()
    assert report.looked_at == 2 and report.fired == 2
    assert await scheduler.pause_after(report) == 0.0  # a full batch: more may be due
    report = await scheduler.run_once()
    assert report.fired == 1
    assert await scheduler.pause_after(report) == 1.0  # the 12:00 tick is an hour away
