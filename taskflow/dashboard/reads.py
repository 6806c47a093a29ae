"""What the dashboard reads, through the engine and its stores, in bounded pages.

The task list reads a light set of columns (no payload, result or traceback; the error cut
short) so a page stays small whatever the tasks carry; a task's page reads the task whole and
cuts each large field to ``FIELD_LIMIT`` characters.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from psycopg.rows import dict_row

from taskflow.engine import Engine
from taskflow.errors import InvalidArgument, unavailable
from taskflow.models import TaskRecord, TaskState, WorkerStatus, parse_task_id, utcnow
from taskflow.scheduling import ScheduleService
from taskflow.scheduling.models import ScheduleRecord
from taskflow.store.dags import DagRunRecord
from taskflow.workflows.service import RUN_STATES, DagService

#: Largest page of tasks or runs one request returns.
MAX_PAGE = 200
DEFAULT_PAGE = 50
#: Characters of a list row's error.
ERROR_PREVIEW = 240

_HEX = re.compile(r"^[0-9a-f]{8,32}$")
_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,126}[A-Za-z0-9])?$")
_NAMESPACE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")

_LIST_COLUMNS = f"""id::text, namespace, queue, handler, state, priority, attempts, failures,
    created_at, started_at, finished_at, updated_at, left(error, {ERROR_PREVIEW}) AS error,
    run_id::text, step, skipped, progress"""


@dataclass(frozen=True)
class TaskFilter:
    namespace: str = "default"
    queue: str | None = None
    states: tuple[str, ...] = ()
    handler: str | None = None
    #: A task id, or the first 8 or more hex digits of one.
    id_prefix: str | None = None


@dataclass(frozen=True)
class TaskRow:
    """A task as the list shows it."""

    fields: dict[str, Any]

    @property
    def id(self) -> str:
        return str(self.fields["id"])


def check_name(value: str | None, field: str, *, namespace: bool = False) -> str | None:
    if value is None or value == "":
        return None
    pattern = _NAMESPACE if namespace else _NAME
    if not pattern.match(value):
        what = "a namespace" if namespace else "a name"
        raise InvalidArgument(field, f"{value!r} is not {what}")
    return value


def check_states(raw: Sequence[str], field: str = "state") -> tuple[str, ...]:
    known = [s.value for s in TaskState]
    for s in raw:
        if s not in known:
            raise InvalidArgument(field, f"unknown state {s!r}; one of {', '.join(known)}")
    return tuple(raw)


def check_page_size(raw: str | None, field: str = "limit") -> int:
    if raw is None or raw == "":
        return DEFAULT_PAGE
    try:
        size = int(raw)
    except ValueError:
        raise InvalidArgument(field, f"expected an integer, got {raw!r}") from None
    if not 1 <= size <= MAX_PAGE:
        raise InvalidArgument(field, f"must be between 1 and {MAX_PAGE}, got {size}")
    return size


def id_range(prefix: str, field: str = "id") -> tuple[str, str]:
    """The smallest and largest UUID that start with ``prefix`` (8 to 32 hex digits, dashes
    allowed): an id search is a range scan of the primary key."""
    digits = prefix.strip().lower().replace("-", "")
    if not _HEX.match(digits):
        raise InvalidArgument(
            field, f"{prefix!r} is not a task id or the first 8 or more hex digits of one"
        )

    def uuid_of(hex32: str) -> str:
        h = hex32
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    pad = 32 - len(digits)
    return uuid_of(digits + "0" * pad), uuid_of(digits + "f" * pad)


class DashboardReads:
    def __init__(self, engine: Engine, dags: DagService | None = None) -> None:
        self.engine = engine
        self.dags = dags or DagService(engine)
        self.schedules = ScheduleService(engine)

    # -- tasks -----------------------------------------------------------------------------

    async def tasks(
        self, f: TaskFilter, limit: int, before: str | None
    ) -> tuple[list[TaskRow], str | None]:
        """Newest first; the next page's token (the last id) when there is more."""
        where = ["namespace = %s"]
        params: list[Any] = [f.namespace]
        if f.queue:
            where.append("queue = %s")
            params.append(f.queue)
        if f.states:
            where.append("state = ANY(%s)")
            params.append(list(f.states))
        if f.handler:
            where.append("handler = %s")
            params.append(f.handler)
        if f.id_prefix:
            low, high = id_range(f.id_prefix, "id")
            where.append("id BETWEEN %s AND %s")
            params += [low, high]
        if before:
            where.append("id < %s")
            params.append(parse_task_id(before, "before"))
        sql = (
            f"SELECT {_LIST_COLUMNS} FROM tasks WHERE {' AND '.join(where)} "
            "ORDER BY id DESC LIMIT %s"
        )
        with unavailable("PostgreSQL"):
            async with self.engine.store.pool.connection() as conn:
                cur = conn.cursor(row_factory=dict_row)
                await cur.execute(sql, [*params, limit + 1])
                rows = await cur.fetchall()
        page = [TaskRow(r) for r in rows[:limit]]
        return page, (page[-1].id if len(rows) > limit else None)

    async def task(self, task_id: str) -> TaskRecord:
        return await self.engine.get(task_id, with_attempts=True)

    async def handlers(self, namespace: str) -> list[str]:
        """Handler names seen among a namespace's recent tasks (for the filter's choices)."""
        with unavailable("PostgreSQL"):
            async with self.engine.store.pool.connection() as conn:
                cur = await conn.execute(
                    """SELECT DISTINCT handler FROM (
                           SELECT handler FROM tasks WHERE namespace = %s
                           ORDER BY id DESC LIMIT 2000) recent ORDER BY handler""",
                    (namespace,),
                )
                return [r[0] for r in await cur.fetchall()]

    # -- DAG runs --------------------------------------------------------------------------

    async def runs(
        self, namespace: str, states: Sequence[str], limit: int, before: str | None
    ) -> tuple[list[DagRunRecord], dict[str, dict[str, int]], str | None]:
        for s in states:
            if s not in RUN_STATES:
                raise InvalidArgument(
                    "state", f"unknown run state {s!r}; one of {', '.join(RUN_STATES)}"
                )
        return await self.dags.list(
            namespace=namespace, states=states, page_size=limit, page_token=before or None
        )

    async def run(self, run_id: str) -> DagRunRecord:
        return await self.dags.get(run_id, "run_id")

    # -- workers and schedules -------------------------------------------------------------

    async def workers(self, now: datetime | None = None) -> tuple[list[WorkerStatus], int]:
        """Workers whose last announcement is younger than a lease (they announce every third
        of one), and how many older entries were left out (workers gone without a goodbye)."""
        now = now or utcnow()
        horizon = timedelta(seconds=self.engine.settings.lease_seconds)
        every = await self.engine.workers()
        alive = [w for w in every if now - w.seen_at <= horizon]
        return alive, len(every) - len(alive)

    async def schedule_page(
        self, namespace: str | None, limit: int, after: str | None
    ) -> tuple[list[ScheduleRecord], str | None]:
        return await self.schedules.list_page(namespace, limit, after or None)
