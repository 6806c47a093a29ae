"""Reads and batched writes of the ``tasks`` and ``task_attempts`` tables."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from taskflow.config import Settings
from taskflow.models import (
    Attempt,
    AttemptResult,
    ExpiredLease,
    PendingTask,
    RetryPolicy,
    SubmitResult,
    TaskRecord,
    TaskState,
    TaskSubmission,
)
from taskflow.store.rows import COLUMNS, TERMINAL_SQL, record_from_row, state_of
from taskflow.store.settle import Settled, settle_statements, settled_from

T = TypeVar("T")


@dataclass(frozen=True)
class NewTask:
    """A validated submission with its id, resolved defaults and initial state."""

    id: str
    spec: TaskSubmission
    state: TaskState
    #: When the engine accepted it: the instant a delay counts from (one clock for both).
    created_at: datetime
    run_at: datetime
    max_retries: int
    retry: RetryPolicy
    max_retries_set: bool = True
    timeout_seconds: float = 0.0
    #: A DAG step: its run, its name, and how many parents must succeed before it runs.
    run_id: str | None = None
    step: str | None = None
    pending_parents: int = 0


@dataclass(frozen=True)
class Claim:
    task_id: str
    attempt: int
    worker: str
    started_at: datetime
    token: str = ""


@dataclass(frozen=True)
class Progress:
    task_id: str
    attempt: int
    fraction: float
    message: str | None


@dataclass(frozen=True)
class RecordedResult:
    won: bool  # this attempt's outcome is the one recorded for it
    state: TaskState | None  # the task's state in PostgreSQL now (None: the task is gone)


@dataclass
class BatchRecord:
    """What a batch made of the record: per result ``(task id, attempt)``, and the claims of
    tasks that had already ended (cancelled, or a duplicate delivery): their handlers stop."""

    results: dict[tuple[str, int], RecordedResult] = field(default_factory=dict)
    already_ended: set[tuple[str, int]] = field(default_factory=set)
    #: DAG steps released or withdrawn because steps of this batch ended.
    settled: Settled = field(default_factory=Settled)


@dataclass(frozen=True)
class ExpiredOutcome:
    task_id: str
    ended: bool  # this call ended the attempt as lost (else it already had an outcome)
    state: TaskState | None  # the task's state now (None: the task is gone)
    failures: int
    run_at: datetime | None


def insert_row(t: NewTask) -> tuple[Any, ...]:
    """The values of ``INSERT_COLUMNS`` for one task."""
    s = t.spec
    return (
        t.id,
        s.namespace,
        s.queue,
        s.handler,
        s.payload_json,
        s.priority,
        t.state.value,
        t.max_retries,
        t.max_retries_set,
        t.timeout_seconds,
        t.retry.initial_seconds,
        t.retry.multiplier,
        t.retry.max_seconds,
        s.idempotency_key,
        s.concurrency_key,
        s.concurrency_limit,
        json.dumps(s.labels),
        t.run_at,
        t.created_at,
        t.run_id,
        t.step,
        t.pending_parents,
    )


def insert_params(tasks: Sequence[NewTask]) -> list[list[Any]]:
    """The column arrays of ``INSERT_SQL`` and ``SUBMIT_SQL`` for ``tasks``."""
    return [list(column) for column in zip(*map(insert_row, tasks), strict=True)] or [
        [] for _ in INSERT_COLUMNS
    ]


async def _configure(conn: AsyncConnection[Any]) -> None:
    """Every store connection plans each execution of a prepared statement for its own
    parameters. The batched statements take their rows as arrays (``unnest``, ``ANY``); a
    generic plan, which PostgreSQL may keep after five executions (psycopg prepares what a
    connection ran five times), cannot see an array's length and plans for ten rows: the
    idempotency lookup before a ``submit_many`` of 1,000 took seconds, growing with the table,
    and ``submit_many`` fell from about 9,000 tasks/s to 480."""
    await conn.execute("SET plan_cache_mode = force_custom_plan")


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
            # Statements commit on their own; several-statement writes use conn.transaction()
            # or a pipeline, so no transaction is ever left open between two awaits.
            kwargs={"autocommit": True},
            configure=_configure,
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
        """Insert in one statement (one round trip, committed on its own); a known idempotency
        key yields the existing task.

        ``SUBMIT_SQL`` inserts and, in the same statement, finds the tasks that already held
        the idempotency keys of the rows it skipped. A row it can account for neither way (a
        key committed by a concurrent submit after this statement began, or repeated within
        the batch) is looked up by a second statement, which sees every committed row.
        """
        async with self.pool.connection() as conn:
            # One task (a lone submit, the common case) binds scalars: dumping 22 one-element
            # arrays cost more than the rest of the statement's client side.
            if len(tasks) == 1:
                cur = await conn.execute(SUBMIT_ONE_SQL, insert_row(tasks[0]), prepare=True)
            else:
                cur = await conn.execute(SUBMIT_SQL, insert_params(tasks), prepare=True)
            rows = await cur.fetchall()
            # (id, inserted, the existing task holding its key, if this statement saw one)
            found: dict[str, str | None] = {}
            for task_id, inserted, other in rows:
                if inserted:
                    found[task_id] = None
                elif other is not None:
                    found[task_id] = other
            missing = [t for t in tasks if t.id not in found]
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
        results: list[SubmitResult] = []
        for t in tasks:
            if t.id in found:
                other = found[t.id]
                results.append(
                    SubmitResult(t.id, True) if other is None else SubmitResult(other, False)
                )
            else:
                key = (t.spec.namespace, t.spec.queue, t.spec.idempotency_key or "")
                results.append(SubmitResult(existing[key], False))
        return results

    # -- reads ------------------------------------------------------------------------------

    async def get(self, task_id: str, *, with_attempts: bool = False) -> TaskRecord | None:
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(f"SELECT {COLUMNS} FROM tasks WHERE id = %s", (task_id,))
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
        return record_from_row(row, attempts)

    async def get_many(self, task_ids: Sequence[str]) -> list[TaskRecord]:
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                f"SELECT {COLUMNS} FROM tasks WHERE id = ANY(%b::uuid[])",
                (list(task_ids),),
            )
            return [record_from_row(r) for r in await cur.fetchall()]

    async def get_by_idempotency_keys(
        self, keys: Sequence[tuple[str, str, str]]
    ) -> list[TaskRecord]:
        """The tasks submitted with these ``(namespace, queue, idempotency_key)``: one query."""
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                f"""SELECT {COLUMNS} FROM tasks
                    WHERE idempotency_key IS NOT NULL
                      AND (namespace, queue, idempotency_key) IN
                          (SELECT * FROM unnest(%b::text[], %b::text[], %b::text[]))""",
                ([k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys]),
            )
            return [record_from_row(r) for r in await cur.fetchall()]

    async def by_idempotency_keys(
        self, keys: Sequence[tuple[str, str, str]]
    ) -> dict[tuple[str, str, str], tuple[str, str, str]]:
        """(namespace, queue, idempotency key) → (id, handler, payload JSON) of the tasks
        that hold those keys."""
        if not keys:
            return {}
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                """SELECT namespace, queue, idempotency_key, id::text, handler,
                          coalesce(payload::text, 'null')
                   FROM tasks
                   WHERE (namespace, queue, idempotency_key) IN
                         (SELECT * FROM unnest(%b::text[], %b::text[], %b::text[]))""",
                [[k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys]],
            )
            return {(r[0], r[1], r[2]): (r[3], r[4], r[5]) for r in await cur.fetchall()}

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
        sql = f"SELECT {COLUMNS} FROM tasks WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT %s"
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(sql, params)
            return [record_from_row(r) for r in await cur.fetchall()]

    async def pending_page(self, after_id: str | None, limit: int) -> list[PendingTask]:
        """Non-terminal tasks in id order, for the housekeeping sweep: only what it compares
        with Redis (a sweep reads thousands of rows; whole records cost it most of its time)."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                """SELECT id::text, namespace, queue, updated_at FROM tasks
                   WHERE state IN ('scheduled', 'queued', 'running', 'retrying')
                     AND id > %s ORDER BY id LIMIT %s""",
                (after_id or "00000000-0000-0000-0000-000000000000", limit),
                prepare=True,
            )
            return [PendingTask(*row) for row in await cur.fetchall()]

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

    # -- the completion path -----------------------------------------------------------------

    async def record_batch(
        self,
        claims: Sequence[Claim],
        results: Sequence[AttemptResult],
        progress: Sequence[Progress] = (),
    ) -> BatchRecord:
        """Claims, progress, then attempt results: one round trip, one implicit transaction.

        The statements go out together in pipeline mode on an autocommit connection, so
        PostgreSQL runs them as one transaction and no transaction ever waits on this process.
        A refused batch is rolled back whole (the caller splits it to find the bad rows).

        The attempt row is the fence: a result is recorded only when its attempt is still
        ``running`` (or already holds this very outcome under this token: the batch is being
        repeated after an ambiguous commit), and only a recorded result may move the task. A
        claim of a task that already finished is recorded as ``superseded`` (``cancelled`` when
        the task was cancelled before the claim was recorded); a claim ends the
        task's older attempts that are still open as ``lost`` (a new lease proves the old one
        gone). A task's first terminal state wins.
        """
        statements: list[tuple[Any, list[Any]]] = []
        if claims:
            latest = _latest(claims, lambda c: (c.task_id, c.attempt))
            ids, attempts = [c.task_id for c in latest], [c.attempt for c in latest]
            statements.append((_END_SUPERSEDED_ATTEMPTS, [ids, attempts]))
            statements.append(
                (
                    _INSERT_CLAIMED_ATTEMPTS,
                    [
                        [c.task_id for c in claims],
                        [c.attempt for c in claims],
                        [c.worker for c in claims],
                        [c.token for c in claims],
                        [c.started_at for c in claims],
                    ],
                )
            )
            statements.append(
                (
                    _MARK_RUNNING,
                    [ids, attempts, [c.worker for c in latest], [c.started_at for c in latest]],
                )
            )
            statements.append((_COUNT_LATE_CLAIMS, [ids, attempts]))
        if progress:
            statements.append(
                (
                    _SET_PROGRESS,
                    [
                        [p.task_id for p in progress],
                        [p.attempt for p in progress],
                        [p.fraction for p in progress],
                        [p.message for p in progress],
                    ],
                )
            )
        if results:
            statements.append(
                (
                    _RECORD_RESULTS,
                    [
                        [r.task_id for r in results],
                        [r.attempt for r in results],
                        [r.token for r in results],
                        [r.state.value for r in results],
                        [r.outcome.value for r in results],
                        [r.result_json for r in results],
                        [r.error for r in results],
                        [r.traceback for r in results],
                        [r.next_run_at for r in results],
                        [r.finished_at for r in results],
                        [r.count_failure for r in results],
                    ],
                )
            )
        steps = [r.task_id for r in results if r.run_id]
        if steps:
            statements += settle_statements(steps)
        cursors = await self._pipeline(statements)
        record = BatchRecord()
        if claims:
            inserted = await cursors[1].fetchall()
            record.already_ended = {(r[0], r[1]) for r in inserted if r[2]}
        if steps:
            record.settled = await settled_from(cursors[-4:])
            cursors = cursors[:-4]
        if results:
            rows = await cursors[-1].fetchall()
            record.results = {
                (r[0], r[1]): RecordedResult(won=r[2], state=state_of(r[3])) for r in rows
            }
        return record

    async def _pipeline(self, statements: Sequence[tuple[Any, list[Any]]]) -> list[Any]:
        """Run ``statements`` as one implicit transaction in one round trip; their cursors."""
        async with self.pool.connection() as conn, conn.pipeline():
            return [await conn.execute(sql, params) for sql, params in statements]

    async def end_expired(
        self, leases: Sequence[ExpiredLease], *, max_lost: int, poison_error: str
    ) -> tuple[list[ExpiredOutcome], Settled]:
        """Leases whose deadline passed: end each one's attempt as ``lost`` unless it already
        has an outcome, and move the task (queued again; ``failed`` as poison after
        ``max_lost`` lost leases; ``cancelled`` when a cancel was pending). One statement.

        Returns, per lease, whether this call ended the attempt and what PostgreSQL now says
        of the task, from which Redis is repaired; and what the end of DAG steps (a poisoned
        or cancelled step) did to their runs.
        """
        if not leases:
            return [], Settled()
        params = [
            max_lost,
            poison_error,
            [x.task_id for x in leases],
            [x.attempt for x in leases],
            [x.worker for x in leases],
            [x.lost for x in leases],
            [x.cancel_requested for x in leases],
        ]
        cursors = await self._pipeline(
            [(_END_EXPIRED, params), *settle_statements([x.task_id for x in leases])]
        )
        rows = await cursors[0].fetchall()
        outcomes = [
            ExpiredOutcome(
                task_id=r[0],
                ended=r[1],
                state=state_of(r[2]),
                failures=r[3] or 0,
                run_at=r[4],
            )
            for r in rows
        ]
        return outcomes, await settled_from(cursors[1:])

    # -- control ------------------------------------------------------------------------------

    async def mark_cancelled(self, task_id: str) -> tuple[TaskRecord | None, Settled]:
        """Cancel unless already terminal, with its open attempt, in one transaction; a DAG
        step's cancel is applied to its run there too. Returns the task as it now is (None:
        unknown) and the steps to withdraw from Redis."""
        cursors = await self._pipeline(
            [
                (_CANCEL_TASK, [task_id]),
                (_CANCEL_OPEN_ATTEMPTS, [task_id]),
                *settle_statements([task_id]),
            ]
        )
        settled = await settled_from(cursors[2:])
        return await self.get(task_id), settled

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
                    RETURNING {COLUMNS}""",
                params,
            )
            return [record_from_row(r) for r in await cur.fetchall()]

    async def delete_finished_before(self, cutoff: datetime, limit: int) -> int:
        async with self.pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                """DELETE FROM tasks WHERE id IN (
                       SELECT id FROM tasks WHERE finished_at < %s AND run_id IS NULL LIMIT %s)""",
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


_END_SUPERSEDED_ATTEMPTS: Any = b"""
UPDATE task_attempts a SET outcome = 'lost', finished_at = now(),
       error = 'the task was claimed again (attempt ' || v.attempt || ') while this attempt '
               || 'was open: its lease had ended'
FROM unnest(%b::uuid[], %b::int[]) AS v(id, attempt)
WHERE a.task_id = v.id AND a.number < v.attempt AND a.outcome = 'running'
"""

_INSERT_CLAIMED_ATTEMPTS: Any = f"""
INSERT INTO task_attempts (task_id, number, worker, token, started_at, outcome, finished_at, error)
SELECT v.id, v.attempt, v.worker, v.token, v.started_at,
       CASE WHEN t.state = 'cancelled' THEN 'cancelled'
            WHEN t.state IN {TERMINAL_SQL} THEN 'superseded' ELSE 'running' END,
       CASE WHEN t.state IN {TERMINAL_SQL} THEN now() END,
       CASE WHEN t.state = 'cancelled' THEN 'cancelled before its claim was recorded'
            WHEN t.state IN {TERMINAL_SQL}
            THEN 'claimed after the task had already ended (' || t.state || ')' END
FROM unnest(%b::uuid[], %b::int[], %b::text[], %b::text[], %b::timestamptz[])
     AS v(id, attempt, worker, token, started_at)
JOIN tasks t ON t.id = v.id
ON CONFLICT (task_id, number) DO NOTHING
RETURNING task_id::text, number, outcome <> 'running'
""".encode()

_MARK_RUNNING: Any = f"""
UPDATE tasks t SET state = 'running', attempts = v.attempt, worker = v.worker,
       updated_at = now(), started_at = coalesce(t.started_at, v.started_at)
FROM unnest(%b::uuid[], %b::int[], %b::text[], %b::timestamptz[])
     AS v(id, attempt, worker, started_at)
WHERE t.id = v.id AND t.state NOT IN {TERMINAL_SQL} AND t.attempts <= v.attempt
  AND EXISTS (SELECT 1 FROM task_attempts a
              WHERE a.task_id = v.id AND a.number = v.attempt AND a.outcome = 'running')
""".encode()

# A claim of a task that had already ended still counts as a claim (attempts = claims so far);
# the task's state and times stay as they are.
_COUNT_LATE_CLAIMS: Any = f"""
UPDATE tasks t SET attempts = v.attempt
FROM unnest(%b::uuid[], %b::int[]) AS v(id, attempt)
WHERE t.id = v.id AND t.state IN {TERMINAL_SQL} AND t.attempts < v.attempt
""".encode()

_SET_PROGRESS: Any = b"""
UPDATE tasks t SET progress = v.progress, progress_message = v.message, updated_at = now()
FROM unnest(%b::uuid[], %b::int[], %b::float8[], %b::text[]) AS v(id, attempt, progress, message)
WHERE t.id = v.id AND t.state = 'running' AND t.attempts = v.attempt
"""

# One row per reported result: (id, attempt, recorded by this call, the task's state now).
_RECORD_RESULTS: Any = f"""
WITH v AS (
    SELECT * FROM unnest(%b::uuid[], %b::int[], %b::text[], %b::text[], %b::text[], %b::text[],
                         %b::text[], %b::text[], %b::timestamptz[], %b::timestamptz[], %b::bool[])
        AS v(id, attempt, token, state, outcome, result, error, traceback, run_at, finished_at,
             count_failure)
),
won AS (
    UPDATE task_attempts a SET outcome = v.outcome, error = v.error, finished_at = v.finished_at
    FROM v
    WHERE a.task_id = v.id AND a.number = v.attempt AND a.outcome = 'running'
    RETURNING a.task_id, a.number
),
latest AS (
    SELECT DISTINCT ON (v.id) v.*,
           count(*) FILTER (WHERE v.count_failure) OVER (PARTITION BY v.id) AS failed
    FROM v JOIN won ON won.task_id = v.id AND won.number = v.attempt
    ORDER BY v.id, v.attempt DESC
),
moved AS (
    UPDATE tasks t SET
        state = l.state,
        result = coalesce(l.result::jsonb, t.result),
        error = CASE WHEN l.state = 'succeeded' THEN NULL ELSE coalesce(l.error, t.error) END,
        traceback = CASE WHEN l.state = 'succeeded' THEN NULL
                         ELSE coalesce(l.traceback, t.traceback) END,
        run_at = coalesce(l.run_at, t.run_at),
        failures = t.failures + l.failed,
        finished_at = CASE WHEN l.state IN {TERMINAL_SQL} THEN l.finished_at END,
        updated_at = now()
    FROM latest l
    WHERE t.id = l.id AND t.state NOT IN {TERMINAL_SQL} AND t.attempts <= l.attempt
    RETURNING t.id, t.state
)
SELECT v.id::text, v.attempt,
       won.task_id IS NOT NULL OR (a.token = v.token AND a.outcome = v.outcome),
       coalesce(moved.state, t.state)
FROM v
LEFT JOIN won ON won.task_id = v.id AND won.number = v.attempt
LEFT JOIN moved ON moved.id = v.id
LEFT JOIN tasks t ON t.id = v.id
LEFT JOIN task_attempts a ON a.task_id = v.id AND a.number = v.attempt
""".encode()

_CANCEL_TASK: Any = f"""
UPDATE tasks SET state = 'cancelled', finished_at = now(), updated_at = now(),
       error = coalesce(error, 'cancelled')
WHERE id = %b::uuid AND state NOT IN {TERMINAL_SQL}
""".encode()

_CANCEL_OPEN_ATTEMPTS: Any = b"""
UPDATE task_attempts SET outcome = 'cancelled', finished_at = now()
WHERE task_id = %b::uuid AND outcome = 'running'
"""

# Per expired lease: (id, ended by this call, task state now, failures, run_at).
_END_EXPIRED: Any = f"""
WITH v AS (
    SELECT v.*, %b::int AS max_lost, %b::text AS poison_error
    FROM unnest(%b::uuid[], %b::int[], %b::text[], %b::int[], %b::bool[])
        AS v(id, attempt, worker, lost, cancel)
),
ended AS (
    INSERT INTO task_attempts (task_id, number, worker, started_at, finished_at, outcome, error)
    SELECT v.id, v.attempt, v.worker, now(), now(), 'lost',
           'the worker stopped heartbeating; its lease expired'
    FROM v JOIN tasks t ON t.id = v.id
    ON CONFLICT (task_id, number) DO UPDATE
        SET outcome = 'lost', finished_at = now(), error = excluded.error
        WHERE task_attempts.outcome = 'running'
    RETURNING task_id
),
moved AS (
    UPDATE tasks t SET
        state = CASE WHEN v.cancel THEN 'cancelled'
                     WHEN v.lost + 1 >= v.max_lost THEN 'failed' ELSE 'queued' END,
        error = CASE WHEN v.cancel THEN coalesce(t.error, 'cancelled')
                     WHEN v.lost + 1 >= v.max_lost THEN v.poison_error ELSE t.error END,
        finished_at = CASE WHEN v.cancel OR v.lost + 1 >= v.max_lost THEN now() END,
        attempts = greatest(t.attempts, v.attempt),
        updated_at = now()
    FROM v JOIN ended ON ended.task_id = v.id
    WHERE t.id = v.id AND t.state NOT IN {TERMINAL_SQL}
    RETURNING t.id, t.state
)
SELECT v.id::text, ended.task_id IS NOT NULL, coalesce(moved.state, t.state), t.failures,
       t.run_at
FROM v
LEFT JOIN ended ON ended.task_id = v.id
LEFT JOIN moved ON moved.id = v.id
LEFT JOIN tasks t ON t.id = v.id
""".encode()


INSERT_COLUMNS = (
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
    "created_at",
    "run_id",
    "step",
    "pending_parents",
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
    "timestamptz",
    "uuid",
    "text",
    "int",
)
INSERT_SQL: Any = (
    f"INSERT INTO tasks ({', '.join(INSERT_COLUMNS)}) "
    f"SELECT * FROM unnest({', '.join(f'%b::{t}[]' for t in _INSERT_TYPES)}) "
    "ON CONFLICT (namespace, queue, idempotency_key) WHERE idempotency_key IS NOT NULL "
    "DO NOTHING RETURNING id::text"
).encode()
#: The rest of ``SUBMIT_SQL`` after its ``input`` rows.
_SUBMIT_TAIL = (
    f"ins AS (INSERT INTO tasks ({', '.join(INSERT_COLUMNS)}) SELECT * FROM input "
    "ON CONFLICT (namespace, queue, idempotency_key) WHERE idempotency_key IS NOT NULL "
    "DO NOTHING RETURNING id) "
    "SELECT id::text, true, NULL::text FROM ins "
    "UNION ALL "
    "SELECT i.id::text, false, (SELECT t.id::text FROM tasks t WHERE t.namespace = i.namespace "
    "AND t.queue = i.queue AND t.idempotency_key = i.idempotency_key) "
    "FROM input i WHERE NOT EXISTS (SELECT 1 FROM ins WHERE ins.id = i.id)"
)
#: Insert, and report each row as ``(id, true, NULL)`` when inserted, else ``(id, false, the
#: task holding its idempotency key)``; that task is NULL when the key was taken during the
#: statement (or repeated within it), and ``TaskStore.insert`` looks it up again. The lookup
#: is a correlated subquery, so it is an index probe per skipped row whatever the plan.
SUBMIT_SQL: Any = (
    "WITH input AS (SELECT * FROM unnest("
    + ", ".join(f"%b::{t}[]" for t in _INSERT_TYPES)
    + f") AS i({', '.join(INSERT_COLUMNS)})), "
    + _SUBMIT_TAIL
).encode()
#: ``SUBMIT_SQL`` for one task, its values bound as scalars (``insert_row``).
SUBMIT_ONE_SQL: Any = (
    "WITH input AS (SELECT "
    + ", ".join(f"%b::{t} AS {name}" for t, name in zip(_INSERT_TYPES, INSERT_COLUMNS, strict=True))
    + "), "
    + _SUBMIT_TAIL
).encode()

__all__ = [
    "BatchRecord",
    "Claim",
    "ExpiredOutcome",
    "NewTask",
    "Progress",
    "RecordedResult",
    "TaskStore",
]
