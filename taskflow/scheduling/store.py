"""The ``schedules`` table: specs written by the API and dev files, status by the scheduler.

Every status write of the scheduler is guarded (``last_tick < tick``, ``pending_tick``,
``revision``) so that two schedulers acting on the same tick change it once.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from taskflow.errors import AlreadyExists
from taskflow.scheduling.models import ConcurrencyPolicy, ScheduleRecord, ScheduleSpec

_COLUMNS = """id::text, namespace, name, cron, timezone, concurrency_policy, suspend,
    starting_deadline_seconds, kind, spec, owner, revision, next_fire_at, last_tick,
    pending_tick, last_fire_tick, last_fired_at, last_task_id::text, fire_count, skip_count,
    last_skip_tick, last_skip_reason, created_at, updated_at"""
_NOT_HANDLED = "(last_tick IS NULL OR last_tick < %(tick)s)"


def _record(row: dict[str, Any]) -> ScheduleRecord:
    spec = ScheduleSpec(
        namespace=row["namespace"],
        name=row["name"],
        cron=row["cron"],
        timezone=row["timezone"],
        concurrency_policy=ConcurrencyPolicy(row["concurrency_policy"]),
        suspend=row["suspend"],
        starting_deadline_seconds=row["starting_deadline_seconds"],
        kind=row["kind"],
        target=row["spec"],
        owner=row["owner"],
    )
    return ScheduleRecord(
        id=row["id"],
        spec=spec,
        revision=row["revision"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        next_fire_at=row["next_fire_at"],
        last_tick=row["last_tick"],
        pending_tick=row["pending_tick"],
        last_fire_tick=row["last_fire_tick"],
        last_fired_at=row["last_fired_at"],
        last_task_id=row["last_task_id"],
        fire_count=row["fire_count"],
        skip_count=row["skip_count"],
        last_skip_tick=row["last_skip_tick"],
        last_skip_reason=row["last_skip_reason"],
    )


@dataclass(frozen=True)
class Claim:
    """A scheduler's intent to fire ``tick``, valid while the row is as it read it."""

    schedule_id: str
    revision: int
    tick: datetime
    previous_task: str | None


@dataclass(frozen=True)
class Fire:
    """A claimed tick whose task was submitted."""

    schedule_id: str
    tick: datetime
    task_id: str
    next_at: datetime


@dataclass(frozen=True)
class PutResult:
    record: ScheduleRecord
    created: bool
    changed: bool


@dataclass(frozen=True)
class SyncResult:
    """What syncing one owner's set of schedules did (names as ``namespace/name``)."""

    created: list[str]
    updated: list[str]
    unchanged: list[str]
    deleted: list[str]


class ScheduleStore:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    # -- specs --------------------------------------------------------------------------------

    async def put(self, spec: ScheduleSpec, now: datetime) -> PutResult:
        """Create the schedule, or update the one of that namespace and name.

        An update that changes the cron expression or the time zone starts the ticks anew
        from ``now``; any other change (suspend included) keeps the next tick, so a resumed
        schedule fires the latest tick it missed once, as a resumed CronJob does. Raises
        ``AlreadyExists`` when the schedule belongs to another owner.
        """
        async with self.pool.connection() as conn, conn.transaction():
            return await _put(conn, spec, now)

    async def sync(self, owner: str, specs: Sequence[ScheduleSpec], now: datetime) -> SyncResult:
        """Make ``owner``'s schedules exactly ``specs``, in one transaction: each is put, and
        the owner's schedules that are not among them are deleted."""
        result = SyncResult([], [], [], [])
        async with self.pool.connection() as conn, conn.transaction():
            for spec in specs:
                put = await _put(conn, spec, now)
                key = f"{spec.namespace}/{spec.name}"
                bucket = (
                    result.created
                    if put.created
                    else result.updated
                    if put.changed
                    else result.unchanged
                )
                bucket.append(key)
            cur = await conn.execute(
                """DELETE FROM schedules WHERE owner = %s
                     AND (namespace, name) NOT IN
                         (SELECT * FROM unnest(%s::text[], %s::text[]))
                   RETURNING namespace, name""",
                (owner, [s.namespace for s in specs], [s.name for s in specs]),
            )
            result.deleted.extend(f"{ns}/{name}" for ns, name in await cur.fetchall())
        return result

    async def get(self, namespace: str, name: str) -> ScheduleRecord | None:
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                f"SELECT {_COLUMNS} FROM schedules WHERE namespace = %s AND name = %s",
                (namespace, name),
            )
            row = await cur.fetchone()
        return None if row is None else _record(row)

    async def page(
        self, namespace: str | None, after: tuple[str, str] | None, limit: int
    ) -> list[ScheduleRecord]:
        """By namespace then name; ``namespace=None`` lists every namespace."""
        where, params = [], []
        if namespace is not None:
            where.append("namespace = %s")
            params.append(namespace)
        if after is not None:
            where.append("(namespace, name) > (%s, %s)")
            params.extend(after)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                f"SELECT {_COLUMNS} FROM schedules {clause} ORDER BY namespace, name LIMIT %s",
                [*params, limit],
            )
            return [_record(r) for r in await cur.fetchall()]

    async def delete(self, namespace: str, name: str) -> bool:
        async with self.pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "DELETE FROM schedules WHERE namespace = %s AND name = %s", (namespace, name)
            )
            return cur.rowcount > 0

    async def set_suspended(
        self, namespace: str, name: str, suspend: bool
    ) -> ScheduleRecord | None:
        async with self.pool.connection() as conn, conn.transaction():
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                f"""UPDATE schedules SET suspend = %s, updated_at = now(),
                        revision = revision + (suspend <> %s)::int
                    WHERE namespace = %s AND name = %s RETURNING {_COLUMNS}""",
                (suspend, suspend, namespace, name),
            )
            row = await cur.fetchone()
        return None if row is None else _record(row)

    # -- the scheduler ------------------------------------------------------------------------

    async def due(self, now: datetime, kinds: Sequence[str], limit: int) -> list[ScheduleRecord]:
        """Schedules with a tick due at ``now``, and fires cut short between their writes."""
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                f"""SELECT {_COLUMNS} FROM schedules
                    WHERE kind = ANY(%(kinds)s)
                      AND ((NOT suspend AND next_fire_at <= %(now)s) OR pending_tick IS NOT NULL)
                    ORDER BY next_fire_at LIMIT %(limit)s""",
                {"now": now, "kinds": list(kinds), "limit": limit},
            )
            return [_record(r) for r in await cur.fetchall()]

    async def next_due(self, kinds: Sequence[str]) -> datetime | None:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                """SELECT min(next_fire_at) FROM schedules
                   WHERE NOT suspend AND kind = ANY(%s)""",
                (list(kinds),),
            )
            row = await cur.fetchone()
        return None if row is None else row[0]

    async def claim(self, claims: Sequence[Claim]) -> set[str]:
        """Write the intent to fire each claim's tick (before submitting its task); returns
        the ids of the schedules claimed. A claim fails when another scheduler handled or
        claimed the tick, or the spec or the last fire changed since they were read (the
        concurrency policy looked at ``previous_task``)."""
        if not claims:
            return set()
        async with self.pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                """UPDATE schedules s SET pending_tick = v.tick
                   FROM unnest(%b::uuid[], %b::bigint[], %b::timestamptz[], %b::uuid[])
                        AS v(id, revision, tick, previous)
                   WHERE s.id = v.id AND s.revision = v.revision AND s.pending_tick IS NULL
                     AND s.last_task_id IS NOT DISTINCT FROM v.previous
                     AND (s.last_tick IS NULL OR s.last_tick < v.tick)
                   RETURNING s.id::text""",
                [
                    [c.schedule_id for c in claims],
                    [c.revision for c in claims],
                    [c.tick for c in claims],
                    [c.previous_task for c in claims],
                ],
            )
            return {row[0] for row in await cur.fetchall()}

    async def record_fires(self, fires: Sequence[Fire], fired_at: datetime) -> set[str]:
        """The claimed ticks fired their tasks; returns the ids recorded (the others were
        recorded by another scheduler)."""
        if not fires:
            return set()
        async with self.pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                """UPDATE schedules s SET pending_tick = NULL, last_tick = v.tick,
                       last_fire_tick = v.tick, last_fired_at = %b, last_task_id = v.task,
                       fire_count = s.fire_count + 1,
                       next_fire_at = greatest(s.next_fire_at, v.next)
                   FROM unnest(%b::uuid[], %b::timestamptz[], %b::uuid[], %b::timestamptz[])
                        AS v(id, tick, task, next)
                   WHERE s.id = v.id AND s.pending_tick = v.tick
                   RETURNING s.id::text""",
                [
                    fired_at,
                    [f.schedule_id for f in fires],
                    [f.tick for f in fires],
                    [f.task_id for f in fires],
                    [f.next_at for f in fires],
                ],
            )
            return {row[0] for row in await cur.fetchall()}

    async def record_skip(
        self,
        schedule_id: str,
        tick: datetime,
        reason: str,
        next_at: datetime,
        *,
        revision: int | None = None,
    ) -> bool:
        """``tick`` was skipped for ``reason``. Unclaimed ticks (``revision`` given) are
        guarded like a claim; without ``revision`` it ends the claim of ``tick``."""
        if revision is None:
            guard = "pending_tick = %(tick)s"
        else:
            guard = f"revision = %(revision)s AND pending_tick IS NULL AND {_NOT_HANDLED}"
        return await self._update(
            f"""UPDATE schedules SET pending_tick = NULL, last_tick = %(tick)s,
                    last_skip_tick = %(tick)s, last_skip_reason = %(reason)s,
                    skip_count = skip_count + 1,
                    next_fire_at = greatest(next_fire_at, %(next)s)
                WHERE id = %(id)s AND {guard}""",
            {
                "id": schedule_id,
                "tick": tick,
                "reason": reason,
                "next": next_at,
                "revision": revision,
            },
        )

    async def _update(self, sql: str, params: dict[str, Any]) -> bool:
        async with self.pool.connection() as conn, conn.transaction():
            cur = await conn.execute(sql.encode(), params)
            return cur.rowcount > 0


async def _put(conn: AsyncConnection[Any], spec: ScheduleSpec, now: datetime) -> PutResult:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        f"""SELECT {_COLUMNS} FROM schedules WHERE namespace = %s AND name = %s FOR UPDATE""",
        (spec.namespace, spec.name),
    )
    row = await cur.fetchone()
    values = {
        "namespace": spec.namespace,
        "name": spec.name,
        "cron": spec.cron,
        "timezone": spec.timezone,
        "policy": spec.concurrency_policy.value,
        "suspend": spec.suspend,
        "deadline": spec.starting_deadline_seconds,
        "kind": spec.kind,
        "spec": json.dumps(spec.target),
        "owner": spec.owner,
    }
    if row is None:
        await cur.execute(
            f"""INSERT INTO schedules (id, namespace, name, cron, timezone, concurrency_policy,
                    suspend, starting_deadline_seconds, kind, spec, owner, next_fire_at)
                VALUES (%(id)s, %(namespace)s, %(name)s, %(cron)s, %(timezone)s, %(policy)s,
                        %(suspend)s, %(deadline)s, %(kind)s, %(spec)s, %(owner)s, %(next)s)
                ON CONFLICT (namespace, name) DO NOTHING
                RETURNING {_COLUMNS}""",
            {**values, "id": str(uuid.uuid4()), "next": spec.timing.next_after(now)},
        )
        created = await cur.fetchone()
        if created is not None:
            return PutResult(_record(created), created=True, changed=True)
        # Created by a concurrent call since the SELECT: update that one instead.
        return await _put(conn, spec, now)
    current = _record(row)
    if current.spec.owner != spec.owner:
        raise AlreadyExists(
            f"schedule {spec.namespace}/{spec.name} exists and is managed by "
            f"{_owner_text(current.spec.owner)}, not by {_owner_text(spec.owner)}; "
            "change it there, or delete it first"
        )
    if current.spec == spec:
        return PutResult(current, created=False, changed=False)
    next_at = (
        current.next_fire_at
        if current.spec.same_timing(spec)
        else spec.timing.next_after(max(now, current.last_tick or now))
    )
    await cur.execute(
        f"""UPDATE schedules SET cron = %(cron)s, timezone = %(timezone)s,
                concurrency_policy = %(policy)s, suspend = %(suspend)s,
                starting_deadline_seconds = %(deadline)s, kind = %(kind)s, spec = %(spec)s,
                next_fire_at = %(next)s, revision = revision + 1, updated_at = now()
            WHERE id = %(id)s RETURNING {_COLUMNS}""",
        {**values, "id": current.id, "next": next_at},
    )
    updated = await cur.fetchone()
    assert updated is not None
    return PutResult(_record(updated), created=False, changed=True)


def _owner_text(owner: str) -> str:
    return repr(owner) if owner else "the API"
