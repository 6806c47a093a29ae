"""Fixtures for schedule tests: a clock the test moves, the schedule service and schedulers
on one migrated engine."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from taskflow.engine import Engine
from taskflow.scheduling import Scheduler, ScheduleService
from taskflow.scheduling.models import ScheduleRecord, ScheduleSpec, validate_schedule

QUEUE = "jobs"


class FakeClock:
    """A clock that moves only when the test says so."""

    def __init__(self, start: datetime) -> None:
        self.current = start

    def now(self) -> datetime:
        return self.current

    def set(self, when: datetime) -> None:
        self.current = when

    def advance(self, **delta: float) -> datetime:
        self.current += timedelta(**delta)
        return self.current


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2024, 6, 3, 9, 59, 30, tzinfo=UTC))


@pytest.fixture
def service(engine: Engine, clock: FakeClock) -> ScheduleService:
    return ScheduleService(engine, clock)


@pytest.fixture
def new_scheduler(engine: Engine, clock: FakeClock) -> Callable[[], Scheduler]:
    return lambda: Scheduler(engine, clock=clock)


def schedule(
    name: str = "report", cron: str = "0 * * * *", task: dict[str, Any] | None = None, **kw: Any
) -> ScheduleSpec:
    return validate_schedule(
        namespace=kw.pop("namespace", "default"),
        name=name,
        cron=cron,
        target=task or {"queue": QUEUE, "handler": "build_report", "payload": {"n": 1}},
        **kw,
    )


async def fired_tasks(engine: Engine, name: str = "report") -> list[Any]:
    """The tasks a schedule fired, oldest first (from PostgreSQL)."""
    rows, _ = await engine.list_tasks(
        namespace="default", queue=None, states=[], page_size=1000, page_token=None
    )
    return sorted(
        (t for t in rows if t.labels.get("taskflow.dev/schedule") == name),
        key=lambda t: t.created_at,
    )


async def reload(service: ScheduleService, name: str = "report") -> ScheduleRecord:
    return await service.get("default", name)


def at(text: str, zone: str = "UTC") -> datetime:
    """An aware datetime from 'YYYY-MM-DD HH:MM[:SS]' read in ``zone``."""
    from zoneinfo import ZoneInfo

    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)).astimezone(UTC)
