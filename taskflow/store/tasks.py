"""Reads and batched writes of the ``tasks`` and ``task_attempts`` tables."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from taskflow.config import Settings
from taskflow.models import (
    Attempt,
    AttemptResult,
    RetryPolicy,
    SubmitResult,
    TaskRecord,
    TaskState,
    TaskSubmission,
)

T = TypeVar("T")

_TERMINAL_SQL = "('succeeded', 'failed', 'cancelled')"
_COLUMNS = """id::text, namespace, queue, handler, payload, priority, state, attempts, failures,
    max_retries, max_retries_set, timeout_seconds, retry_initial, retry_multiplier, retry_max,
    idempotency_key, concurrency_key, concurrency_limit, labels, run_at, created_at, started_at,
    finished_at, updated_at, result, error, traceback, progress, progress_message"""


@dataclass(frozen=True)
class NewTask:
    """A validated submission with its id, resolved defaults and initial state."""

    id: str
    spec: TaskSubmission
    state: TaskState
    run_at: datetime
    max_retries: int
    retry: RetryPolicy
    max_retries_set: bool = True
    timeout_seconds: float = 0.0


@dataclass(frozen=True)
class Claim:
    task_id: str
    attempt: int
    worker: str
    started_at: datetime


@dataclass(frozen=True)
class LostLease:
    task_id: str
    attempt: int
    worker: str
    state: TaskState  # queued (dispatched again), failed (poison) or cancelled
    error: str | None


def _record(row: dict[str, Any], attempts: Sequence[Attempt] = ()) -> TaskRecord:
    return TaskRecord(
        id=row["id"],
        namespace=row["namespace"],
        queue=row["queue"],
        handler=row["handler"],
        state=TaskState(row["state"]),
        payload=row["payload"],
        priority=row["priority"],
        attempts=row["attempts"],
        failures=row["failures"],
        max_retries=row["max_retries"],
        max_retries_set=row["max_retries_set"],
        timeout_seconds=row["timeout_seconds"],
        retry=RetryPolicy(
            initial_seconds=row["retry_initial"],
            multiplier=row["retry_multiplier"],
            max_seconds=row["retry_max"],
        ),
        idempotency_key=row["idempotency_key"],
        concurrency_key=row["concurrency_key"],
        concurrency_limit=row["concurrency_limit"],
        labels=row["labels"] or {},
        created_at=row["created_at"],
        run_at=row["run_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        updated_at=row["updated_at"],
        result=row["result"],
        error=row["error"],
        traceback=row["traceback"],
        progress=row["progress"],
        progress_message=row["progress_message"],
        attempt_history=tuple(attempts),
    )


class TaskStore:
    """Every statement TaskFlow runs against PostgreSQL. Writes take batches."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    @classmethod
    async def open(cls, settings: Settings, *, min_size: int = 1) -> TaskStore:
        pool = AsyncConnectionPool(
            settings.database_url,
            min_size=min_size,
            max_size=max(min_size, settings.db_pool_size),
            open=False,
            timeout=settings.db_timeout_seconds,
            kwargs={"autocommit": False},
        )
        await pool.open(wait=True, timeout=max(30.0, settings.db_timeout_seconds))
        return cls(pool)

    async def close(self) -> None:
        await self.pool.close()

    async def ping(self) -> None:
        async with self.pool.connection(timeout=5) as conn:
            await conn.execute("SELECT 1")

    # -- submission -------------------------------------------------------------------------

    async def insert(self, tasks: Sequence[NewTask]) -> list[SubmitResult]:
        """Insert in one transaction; a known idempotency key yields the existing task."""
        cols: dict[str, list[Any]] = {name: [] for name in _INSERT_COLUMNS}
        for t in tasks:
            s = t.spec
            cols["id"].append(t.id)
            cols["namespace"].append(s.namespace)
            cols["queue"].append(s.queue)
            cols["handler"].append(s.handler)
            cols["payload"].append(json.dumps(s.payload))
            cols["priority"].append(s.priority)
            cols["state"].append(t.state.value)
            cols["max_retries"].append(t.max_retries)
            cols["max_retries_set"].append(t.max_retries_set)
            cols["timeout_seconds"].append(t.timeout_seconds)
            cols["retry_initial"].append(t.retry.initial_seconds)
            cols["retry_multiplier"].append(t.retry.multiplier)
            cols["retry_max"].append(t.retry.max_seconds)
            cols["idempotency_key"].append(s.idempotency_key)
            cols["concurrency_key"].append(s.concurrency_key)
            cols["concurrency_limit"].append(s.concurrency_limit)
            cols["labels"].append(json.dumps(s.labels))
            cols["run_at"].append(t.run_at)
        async with self.pool.connection() as conn, conn.transaction():
            cur = await conn.execute(_INSERT_SQL, [cols[name] for name in _INSERT_COLUMNS])
            inserted = {row[0] for row in await cur.fetchall()}
            results: list[SubmitResult] = []
            missing = [t for t in tasks if t.id not in inserted]
            existing: dict[tuple[str, str, str], str] = {}
            if missing:
                cur = await conn.execute(
                    """SELECT namespace, queue, idempotency_key, id::text FROM tasks
                       WHERE (namespace, queue, idempotency_key) IN
                             (SELECT * FROM unnest(%b::text[], %b::text[], %b::text[]))""",
                    [
                        [t.spec.namespace for t in missing],
                        [t.spec.queue for t in missing],
                        [t.spec.idempotency_key for t in missing],
                    ],
                )
                existing = {(r[0], r[1], r[2]): r[3] for r in await cur.fetchall()}
        for t in tasks:
            if t.id in inserted:
                results.append(SubmitResult(t.id, True))
            else:
                key = (t.spec.namespace, t.spec.queue, t.spec.idempotency_key or "")
                results.append(SubmitResult(existing[key], False))
        return results

    # -- reads ------------------------------------------------------------------------------

    async def get(self, task_id: str, *, with_attempts: bool = False) -> TaskRecord | None:
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(f"SELECT {_COLUMNS} FROM tasks WHERE id = %s", (task_id,))
            row = await cur.fetchone()
            if row is None:
                return None
            attempts: list[Attempt] = []
            if with_attempts:
                await cur.execute(
                    """SELECT number, worker, started_at, finished_at, outcome, error
                       FROM task_attempts WHERE task_id = %s ORDER BY number""",
                    (task_id,),
                )
                attempts = [Attempt(**a) for a in await cur.fetchall()]
        return _record(row, attempts)

    async def get_many(self, task_ids: Sequence[str]) -> list[TaskRecord]:
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                f"SELECT {_COLUMNS} FROM tasks WHERE id = ANY(%b::uuid[])",
                (list(task_ids),),
            )
            return [_record(r) for r in await cur.fetchall()]

    async def list_tasks(
        self,
        *,
        namespace: str,
        queue: str | None,
        states: Sequence[str],
        limit: int,
        before_id: str | None,
    ) -> list[TaskRecord]:
        """Newest first, keyset-paginated: pass the last id of a page as ``before_id``."""
        where = ["namespace = %s"]
        params: list[Any] = [namespace]
        if queue:
            where.append("queue = %s")
            params.append(queue)
        if states:
            where.append("state = ANY(%s)")
            params.append(list(states))
        if before_id:
            where.append("id < %s")
            params.append(before_id)
        params.append(limit)
        sql = f"SELECT {_COLUMNS} FROM tasks WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT %s"
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(sql, params)
            return [_record(r) for r in await cur.fetchall()]

    async def pending_page(self, after_id: str | None, limit: int) -> list[TaskRecord]:
        """Non-terminal tasks in id order, for the housekeeping sweep."""
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                f"""SELECT {_COLUMNS} FROM tasks
                    WHERE state IN ('scheduled', 'queued', 'running', 'retrying')
                      AND id > %s ORDER BY id LIMIT %s""",
                (after_id or "00000000-0000-0000-0000-000000000000", limit),
            )
            return [_record(r) for r in await cur.fetchall()]

    async def finished_counts(self) -> dict[tuple[str, str], dict[str, int]]:
        """Terminal-state counts of every queue (a full scan: for rebuilding Redis only)."""
        counts: dict[tuple[str, str], dict[str, int]] = {}
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                """SELECT namespace, queue, state, count(*) FROM tasks
                   GROUP BY namespace, queue, state"""
            )
            for namespace, queue, state, n in await cur.fetchall():
                per_queue = counts.setdefault((namespace, queue), {})
                if state in ("succeeded", "failed", "cancelled"):
                    per_queue[state] = n
        return counts

    # -- worker writes ------------------------------------------------------------------------

    async def record_batch(
        self,
        claims: Sequence[Claim],
        results: Sequence[AttemptResult],
        progress: Mapping[str, tuple[float, str | None]] | None = None,
    ) -> None:
        """Claims, progress, then attempt results, in one transaction: a batch may hold the
        claim, the last progress and the result of the same attempt. A task's first terminal
        transition wins; later ones change nothing.

        A task may appear more than once (a quick retry claimed again within one batch): the
        task row takes its latest attempt, every attempt row is written.
        """
        async with self.pool.connection() as conn, conn.transaction():
            if claims:
                latest = _latest(claims, lambda c: (c.task_id, c.attempt))
                await conn.execute(
                    f"""UPDATE tasks t SET state = 'running', attempts = v.attempt,
                            worker = v.worker, updated_at = now(),
                            started_at = coalesce(t.started_at, v.started_at)
                        FROM unnest(%b::uuid[], %b::int[], %b::text[], %b::timestamptz[])
                             AS v(id, attempt, worker, started_at)
                        WHERE t.id = v.id AND t.state NOT IN {_TERMINAL_SQL}
                          AND t.attempts <= v.attempt""",
                    [
                        [c.task_id for c in latest],
                        [c.attempt for c in latest],
                        [c.worker for c in latest],
                        [c.started_at for c in latest],
                    ],
                )
                await conn.execute(
                    """INSERT INTO task_attempts (task_id, number, worker, started_at, outcome)
                       SELECT v.id, v.attempt, v.worker, v.started_at, 'running'
                       FROM unnest(%b::uuid[], %b::int[], %b::text[], %b::timestamptz[])
                            AS v(id, attempt, worker, started_at)
                       JOIN tasks t ON t.id = v.id
                       ON CONFLICT (task_id, number) DO NOTHING""",
                    [
                        [c.task_id for c in claims],
                        [c.attempt for c in claims],
                        [c.worker for c in claims],
                        [c.started_at for c in claims],
                    ],
                )
            if progress:
                await conn.execute(
                    """UPDATE tasks t SET progress = v.progress, progress_message = v.message,
                           updated_at = now()
                       FROM unnest(%b::uuid[], %b::float8[], %b::text[]) AS v(id, progress, message)
                       WHERE t.id = v.id""",
                    [
                        list(progress),
                        [p for p, _ in progress.values()],
                        [m for _, m in progress.values()],
                    ],
                )
            if results:
                await self._apply_results(conn, results)

    async def _apply_results(self, conn: Any, results: Sequence[AttemptResult]) -> None:
        # Failures are facts about attempts: counted even when a later claim of the same task
        # already moved its row on (the state update below then leaves the row alone).
        failed: dict[str, int] = {}
        for r in results:
            if r.count_failure:
                failed[r.task_id] = failed.get(r.task_id, 0) + 1
        if failed:
            await conn.execute(
                """UPDATE tasks t SET failures = t.failures + v.n
                   FROM unnest(%b::uuid[], %b::int[]) AS v(id, n) WHERE t.id = v.id""",
                [list(failed), list(failed.values())],
            )
        latest = _latest(results, lambda r: (r.task_id, r.attempt))
        await conn.execute(
            f"""UPDATE tasks t SET
                    state = v.state,
                    result = coalesce(v.result::jsonb, t.result),
                    error = CASE WHEN v.state = 'succeeded' THEN NULL
                                 ELSE coalesce(v.error, t.error) END,
                    traceback = CASE WHEN v.state = 'succeeded' THEN NULL
                                     ELSE coalesce(v.traceback, t.traceback) END,
                    run_at = coalesce(v.run_at, t.run_at),
                    finished_at = CASE WHEN v.state IN {_TERMINAL_SQL}
                                       THEN v.finished_at ELSE NULL END,
                    updated_at = now()
                FROM unnest(%b::uuid[], %b::int[], %b::text[], %b::text[], %b::text[],
                            %b::text[], %b::timestamptz[], %b::timestamptz[])
                     AS v(id, attempt, state, result, error, traceback, run_at, finished_at)
                WHERE t.id = v.id AND t.state NOT IN {_TERMINAL_SQL}
                  AND t.attempts <= v.attempt""",
            [
                [r.task_id for r in latest],
                [r.attempt for r in latest],
                [r.state.value for r in latest],
                [r.result_json for r in latest],
                [r.error for r in latest],
                [r.traceback for r in latest],
                [r.next_run_at for r in latest],
                [r.finished_at for r in latest],
            ],
        )
        await conn.execute(
            """UPDATE task_attempts a SET outcome = v.outcome, error = v.error,
                   finished_at = v.finished_at
               FROM unnest(%b::uuid[], %b::int[], %b::text[], %b::text[], %b::timestamptz[])
                    AS v(id, attempt, outcome, error, finished_at)
               WHERE a.task_id = v.id AND a.number = v.attempt AND a.outcome = 'running'""",
            [
                [r.task_id for r in results],
                [r.attempt for r in results],
                [r.outcome.value for r in results],
                [r.error for r in results],
                [r.finished_at for r in results],
            ],
        )

    async def record_lost(self, lost: Sequence[LostLease]) -> None:
        """Leases that expired: the attempt is ``lost``; the task waits, fails or is cancelled."""
        if not lost:
            return
        async with self.pool.connection() as conn, conn.transaction():
            ids = [x.task_id for x in lost]
            attempts = [x.attempt for x in lost]
            await conn.execute(
                f"""UPDATE tasks t SET state = v.state, error = coalesce(v.error, t.error),
                        attempts = greatest(t.attempts, v.attempt),
                        finished_at = CASE WHEN v.state IN {_TERMINAL_SQL} THEN now() END,
                        updated_at = now()
                    FROM unnest(%b::uuid[], %b::int[], %b::text[], %b::text[])
                         AS v(id, attempt, state, error)
                    WHERE t.id = v.id AND t.state NOT IN {_TERMINAL_SQL}
                      AND t.attempts <= v.attempt""",
                [ids, attempts, [x.state.value for x in lost], [x.error for x in lost]],
            )
            # The claim of a worker that died at once may never have reached PostgreSQL:
            # the lost attempt is recorded either way.
            await conn.execute(
                """INSERT INTO task_attempts
                       (task_id, number, worker, started_at, finished_at, outcome, error)
                   SELECT v.id, v.attempt, v.worker, now(), now(), 'lost',
                          'the worker stopped heartbeating; its lease expired'
                   FROM unnest(%b::uuid[], %b::int[], %b::text[]) AS v(id, attempt, worker)
                   JOIN tasks t ON t.id = v.id
                   ON CONFLICT (task_id, number) DO UPDATE
                   SET outcome = 'lost', finished_at = now(), error = excluded.error
                   WHERE task_attempts.outcome = 'running'""",
                [ids, attempts, [x.worker for x in lost]],
            )

    # -- control ------------------------------------------------------------------------------

    async def mark_cancelled(self, task_id: str) -> TaskRecord | None:
        """Cancel unless already terminal; returns the task as it now is (None: unknown)."""
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute(
                f"""UPDATE tasks SET state = 'cancelled', finished_at = now(), updated_at = now(),
                        error = coalesce(error, 'cancelled')
                    WHERE id = %s AND state NOT IN {_TERMINAL_SQL}""",
                (task_id,),
            )
            await conn.execute(
                """UPDATE task_attempts SET outcome = 'cancelled', finished_at = now()
                   WHERE task_id = %s AND outcome = 'running'""",
                (task_id,),
            )
        return await self.get(task_id)

    async def reset_for_replay(
        self, namespace: str, queue: str, task_ids: Sequence[str] | None
    ) -> list[TaskRecord]:
        """Failed tasks of the queue go back to ``queued`` with their retry budget restored."""
        filter_ids = "AND id = ANY(%b::uuid[])" if task_ids else ""
        params: list[Any] = [namespace, queue]
        if task_ids:
            params.append(list(task_ids))
        async with self.pool.connection() as conn, conn.transaction():
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                f"""UPDATE tasks SET state = 'queued', failures = 0, finished_at = NULL,
                        run_at = now(), updated_at = now()
                    WHERE namespace = %s AND queue = %s AND state = 'failed' {filter_ids}
                    RETURNING {_COLUMNS}""",
                params,
            )
            return [_record(r) for r in await cur.fetchall()]

    async def delete_finished_before(self, cutoff: datetime, limit: int) -> int:
        async with self.pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                """DELETE FROM tasks WHERE id IN (
                       SELECT id FROM tasks WHERE finished_at < %s LIMIT %s)""",
                (cutoff, limit),
            )
            return cur.rowcount


def _latest(items: Sequence[T], key: Callable[[T], tuple[str, int]]) -> list[T]:
    """One item per task: the one of its highest attempt (an UPDATE ... FROM applies only one
    arbitrary source row per target row, so duplicates must not reach it)."""
    best: dict[str, tuple[int, T]] = {}
    for item in items:
        task_id, attempt = key(item)
        if task_id not in best or attempt > best[task_id][0]:
            best[task_id] = (attempt, item)
    return [item for _, item in best.values()]


_INSERT_COLUMNS = (
    "id",
    "namespace",
    "queue",
    "handler",
    "payload",
    "priority",
    "state",
    "max_retries",
    "max_retries_set",
    "timeout_seconds",
    "retry_initial",
    "retry_multiplier",
    "retry_max",
    "idempotency_key",
    "concurrency_key",
    "concurrency_limit",
    "labels",
    "run_at",
)
_INSERT_TYPES = (
    "uuid",
    "text",
    "text",
    "text",
    "jsonb",
    "int",
    "text",
    "int",
    "bool",
    "float8",
    "float8",
    "float8",
    "float8",
    "text",
    "text",
    "int",
    "jsonb",
    "timestamptz",
)
_INSERT_SQL: Any = (
    f"INSERT INTO tasks ({', '.join(_INSERT_COLUMNS)}) "
    f"SELECT * FROM unnest({', '.join(f'%b::{t}[]' for t in _INSERT_TYPES)}) "
    "ON CONFLICT (namespace, queue, idempotency_key) WHERE idempotency_key IS NOT NULL "
    "DO NOTHING RETURNING id::text"
).encode()

__all__ = ["Claim", "LostLease", "NewTask", "TaskStore"]
