"""DAG runs in PostgreSQL: submission, reads, cancel, retry, and what a step's end does to its
run. The statements of ``SETTLE`` run in the same transaction as whatever ended the steps (the
completion path, a cancel, an expired lease), so a child is released exactly when its last
parent's success is recorded, and exactly once (``tasks.settled`` guards repeated batches).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from psycopg.rows import dict_row

from taskflow.keys import QueueRef
from taskflow.models import Attempt, TaskRecord
from taskflow.store.rows import COLUMNS, TERMINAL_SQL, record_from_row
from taskflow.store.settle import Settled
from taskflow.store.tasks import INSERT_SQL, NewTask, TaskStore, insert_params

__all__ = [
    "DagRunRecord",
    "DagStore",
    "NewRun",
    "NewStep",
    "RunProgress",
    "StepProgress",
    "StepRecord",
]

RUN_STATES = ("running", "succeeded", "failed", "cancelled")


@dataclass(frozen=True)
class NewStep:
    task: NewTask  # with run_id, step and pending_parents; state waiting or queued
    name: str
    parents: tuple[str, ...]


@dataclass(frozen=True)
class NewRun:
    id: str
    namespace: str
    name: str | None
    queue: str
    failure_policy: str
    idempotency_key: str | None
    labels: dict[str, str]
    created_at: datetime
    steps: Sequence[NewStep]


@dataclass(frozen=True)
class StepRecord:
    name: str
    depends_on: tuple[str, ...]
    task: TaskRecord

    @property
    def state(self) -> str:
        """The step's state: a task state, or ``skipped`` (it never ran: a parent did not
        succeed, or the run failed fast)."""
        return "skipped" if self.task.skipped else self.task.state.value


@dataclass(frozen=True)
class DagRunRecord:
    id: str
    namespace: str
    name: str | None
    queue: str
    failure_policy: str
    state: str
    idempotency_key: str | None
    labels: dict[str, str]
    steps_total: int
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    steps: tuple[StepRecord, ...] = ()

    @property
    def done(self) -> bool:
        return self.state != "running"

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for s in self.steps:
            out[s.state] = out.get(s.state, 0) + 1
        return out


@dataclass(frozen=True)
class StepProgress:
    """Where one step is: what a status view of a run shows (no payload, result, history)."""

    name: str
    task_id: str
    state: str  # a task state, or ``skipped``
    attempts: int
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None


@dataclass(frozen=True)
class RunProgress:
    id: str
    state: str
    created_at: datetime
    finished_at: datetime | None
    steps: tuple[StepProgress, ...]


#: Longest error text ``DagStore.progress`` returns per step.
PROGRESS_ERROR_CHARS = 512

# -- runs -------------------------------------------------------------------------------------

_RUNCOLUMNS = """id::text, namespace, name, queue, failure_policy, state, idempotency_key, labels,
    steps_total, created_at, updated_at, finished_at"""


def _run(row: dict[str, Any], steps: Sequence[StepRecord] = ()) -> DagRunRecord:
    return DagRunRecord(
        id=row["id"],
        namespace=row["namespace"],
        name=row["name"],
        queue=row["queue"],
        failure_policy=row["failure_policy"],
        state=row["state"],
        idempotency_key=row["idempotency_key"],
        labels=row["labels"] or {},
        steps_total=row["steps_total"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        finished_at=row["finished_at"],
        steps=tuple(steps),
    )


class DagStore:
    """Every statement about DAG runs; shares the task store's pool."""

    def __init__(self, tasks: TaskStore) -> None:
        self.tasks = tasks
        self.pool = tasks.pool

    async def insert(self, run: NewRun) -> tuple[str, bool]:
        """Insert the run, its steps and edges in one transaction. A known idempotency key
        yields the existing run: ``(id, False)``."""
        async with self.pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                """INSERT INTO dag_runs (id, namespace, name, queue, failure_policy, state,
                       idempotency_key, labels, steps_total, created_at, updated_at)
                   VALUES (%s, %s, %s, %s, %s, 'running', %s, %s, %s, %s, %s)
                   ON CONFLICT (namespace, idempotency_key) WHERE idempotency_key IS NOT NULL
                   DO NOTHING RETURNING id::text""",
                (
                    run.id,
                    run.namespace,
                    run.name,
                    run.queue,
                    run.failure_policy,
                    run.idempotency_key,
                    json.dumps(run.labels),
                    len(run.steps),
                    run.created_at,
                    run.created_at,
                ),
            )
            if await cur.fetchone() is None:
                cur = await conn.execute(
                    "SELECT id::text FROM dag_runs WHERE namespace = %s AND idempotency_key = %s",
                    (run.namespace, run.idempotency_key),
                )
                row = await cur.fetchone()
                assert row is not None
                return row[0], False
            await conn.execute(INSERT_SQL, insert_params([s.task for s in run.steps]))
            ids = {s.name: s.task.id for s in run.steps}
            edges = [(ids[p], s.task.id, i) for s in run.steps for i, p in enumerate(s.parents)]
            if edges:
                await conn.execute(
                    """INSERT INTO dag_edges (run_id, parent_id, child_id, ordinal)
                       SELECT %b::uuid, p, c, o
                       FROM unnest(%b::uuid[], %b::uuid[], %b::int[]) AS v(p, c, o)""",
                    [
                        run.id,
                        [p for p, _, _ in edges],
                        [c for _, c, _ in edges],
                        [o for *_, o in edges],
                    ],
                )
        return run.id, True

    async def get(self, run_id: str, *, with_steps: bool = True) -> DagRunRecord | None:
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(f"SELECT {_RUNCOLUMNS} FROM dag_runs WHERE id = %s", (run_id,))
            row = await cur.fetchone()
            if row is None:
                return None
            steps: list[StepRecord] = []
            if with_steps:
                steps = await self._steps(cur, [run_id])
        return _run(row, steps)

    async def get_many(self, run_ids: Sequence[str]) -> list[DagRunRecord]:
        """Runs with their steps (one query each for runs, steps and edges)."""
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                f"SELECT {_RUNCOLUMNS} FROM dag_runs WHERE id = ANY(%b::uuid[])", (list(run_ids),)
            )
            rows = await cur.fetchall()
            steps = await self._steps(cur, [r["id"] for r in rows])
        by_run: dict[str, list[StepRecord]] = {}
        for s in steps:
            assert s.task.run_id is not None
            by_run.setdefault(s.task.run_id, []).append(s)
        return [_run(r, by_run.get(r["id"], [])) for r in rows]

    async def progress(self, run_ids: Sequence[str]) -> list[RunProgress]:
        """Many runs' states and their steps' in one statement (what a view following many
        runs reads each time it looks); runs not found are left out."""
        if not run_ids:
            return []
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                """SELECT r.id::text, r.state, r.created_at, r.finished_at, t.step, t.id::text,
                          CASE WHEN t.skipped THEN 'skipped' ELSE t.state END, t.attempts,
                          t.started_at, t.finished_at, left(t.error, %s)
                   FROM dag_runs r JOIN tasks t ON t.run_id = r.id
                   WHERE r.id = ANY(%s::uuid[]) ORDER BY r.id, t.id""",
                (PROGRESS_ERROR_CHARS, list(run_ids)),
            )
            rows = await cur.fetchall()
        runs: dict[str, RunProgress] = {}
        steps: dict[str, list[StepProgress]] = {}
        for run_id, state, created, finished, *step in rows:
            if run_id not in runs:
                runs[run_id] = RunProgress(run_id, state, created, finished, ())
                steps[run_id] = []
            steps[run_id].append(StepProgress(*step))
        return [replace(r, steps=tuple(steps[r.id])) for r in runs.values()]

    async def _steps(self, cur: Any, run_ids: list[str]) -> list[StepRecord]:
        if not run_ids:
            return []
        await cur.execute(
            f"""SELECT {COLUMNS} FROM tasks WHERE run_id = ANY(%b::uuid[])
                ORDER BY run_id, id""",
            (run_ids,),
        )
        rows = await cur.fetchall()
        await cur.execute(
            """SELECT a.task_id::text AS task, a.number, a.worker, a.started_at, a.finished_at,
                      a.outcome, a.error
               FROM task_attempts a JOIN tasks t ON t.id = a.task_id
               WHERE t.run_id = ANY(%b::uuid[]) ORDER BY a.task_id, number""",
            (run_ids,),
        )
        attempts: dict[str, list[Attempt]] = {}
        for a in await cur.fetchall():
            attempts.setdefault(a.pop("task"), []).append(Attempt(**a))
        tasks = [record_from_row(r, attempts.get(r["id"], ())) for r in rows]
        await cur.execute(
            """SELECT e.child_id::text AS child, p.step AS parent FROM dag_edges e
               JOIN tasks p ON p.id = e.parent_id
               WHERE e.run_id = ANY(%b::uuid[]) ORDER BY e.child_id, e.ordinal""",
            (run_ids,),
        )
        parents: dict[str, list[str]] = {}
        for edge in await cur.fetchall():
            parents.setdefault(edge["child"], []).append(edge["parent"])
        return [StepRecord(t.step or "", tuple(parents.get(t.id, ())), t) for t in tasks]

    async def list_runs(
        self, *, namespace: str, states: Sequence[str], limit: int, before_id: str | None
    ) -> list[DagRunRecord]:
        """Runs of a namespace, newest first, without their steps (keyset pages on id)."""
        where, params = ["namespace = %s"], [namespace]
        if states:
            where.append("state = ANY(%s)")
            params.append(list(states))  # type: ignore[arg-type]
        if before_id:
            where.append("id < %s")
            params.append(before_id)
        sql = (
            f"SELECT {_RUNCOLUMNS} FROM dag_runs WHERE {' AND '.join(where)} "
            "ORDER BY id DESC LIMIT %s"
        )
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(sql, [*params, limit])
            return [_run(r) for r in await cur.fetchall()]

    async def step_counts(self, run_ids: Sequence[str]) -> dict[str, dict[str, int]]:
        """Per run, how many steps are in each step state (``skipped`` apart)."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                """SELECT run_id::text, CASE WHEN skipped THEN 'skipped' ELSE state END, count(*)
                   FROM tasks WHERE run_id = ANY(%b::uuid[]) GROUP BY 1, 2""",
                (list(run_ids),),
            )
            out: dict[str, dict[str, int]] = {}
            for run_id, state, n in await cur.fetchall():
                out.setdefault(run_id, {})[state] = n
        return out

    async def cancel(self, run_id: str) -> tuple[DagRunRecord | None, Settled]:
        """Cancel a running run: the run and every step not finished end ``cancelled`` (running
        steps' open attempts too; their workers stop them when Redis is told)."""
        async with self.pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                """UPDATE dag_runs SET state = 'cancelled', finished_at = now(), updated_at = now()
                   WHERE id = %s AND state = 'running' RETURNING id""",
                (run_id,),
            )
            out = Settled()
            if await cur.fetchone() is not None:
                cur = await conn.execute(
                    f"""WITH targets AS (
                            SELECT id, state AS was FROM tasks
                            WHERE run_id = %s AND state NOT IN {TERMINAL_SQL} FOR UPDATE)
                        UPDATE tasks t SET state = 'cancelled', settled = true,
                            skipped = x.was IN ('waiting', 'scheduled', 'queued'),
                            error = coalesce(t.error, 'cancelled with its run'),
                            finished_at = now(), updated_at = now()
                        FROM targets x WHERE t.id = x.id
                        RETURNING t.id::text, t.namespace, t.queue, x.was""",
                    (run_id,),
                )
                rows = await cur.fetchall()
                await conn.execute(
                    """UPDATE task_attempts SET outcome = 'cancelled', finished_at = now()
                       WHERE task_id = ANY(%b::uuid[]) AND outcome = 'running'""",
                    ([r[0] for r in rows],),
                )
                out.withdrawn = [
                    (QueueRef(ns, q), tid) for tid, ns, q, was in rows if was != "waiting"
                ]
        return await self.get(run_id), out

    async def retry(self, run_id: str) -> tuple[DagRunRecord | None, list[TaskRecord]]:
        """A failed (or cancelled) run runs again from the steps that did not succeed:
        succeeded steps keep their results; a step whose parents all succeeded is queued, the
        others wait for their parents. Returns the run and the steps to dispatch."""
        async with self.pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                """UPDATE dag_runs SET state = 'running', finished_at = NULL, updated_at = now()
                   WHERE id = %s AND state IN ('failed', 'cancelled') RETURNING id""",
                (run_id,),
            )
            released: list[TaskRecord] = []
            if await cur.fetchone() is not None:
                steps = conn.cursor(row_factory=dict_row)
                await steps.execute(
                    f"""WITH again AS (
                            SELECT t.id AS step_id, (SELECT count(*) FROM dag_edges e
                                          JOIN tasks p ON p.id = e.parent_id
                                          WHERE e.child_id = t.id
                                            AND p.state <> 'succeeded') AS waiting_on
                            FROM tasks t
                            WHERE t.run_id = %s AND t.state IN ('failed', 'cancelled'))
                        UPDATE tasks t SET
                            state = CASE WHEN a.waiting_on = 0 THEN 'queued' ELSE 'waiting' END,
                            pending_parents = a.waiting_on, failures = 0, settled = false,
                            skipped = false, error = NULL, traceback = NULL, result = NULL,
                            finished_at = NULL, run_at = now(), updated_at = now()
                        FROM again a WHERE t.id = a.step_id
                        RETURNING {COLUMNS}, a.waiting_on = 0 AS ready""",
                    (run_id,),
                )
                for row in await steps.fetchall():
                    if row.pop("ready"):
                        released.append(record_from_row(row))
        return await self.get(run_id), released

    async def parent_results(self, child_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """For each step, its parents' results by step name (from PostgreSQL, not Redis)."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                """SELECT e.child_id::text, p.step, p.result::text FROM dag_edges e
                   JOIN tasks p ON p.id = e.parent_id WHERE e.child_id = ANY(%b::uuid[])""",
                (list(child_ids),),
            )
            out: dict[str, dict[str, Any]] = {c: {} for c in child_ids}
            for child, step, result in await cur.fetchall():
                out[child][step] = None if result is None else json.loads(result)
        return out

    async def delete_finished_before(self, cutoff: datetime, limit: int) -> int:
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                """DELETE FROM dag_runs WHERE id IN (
                       SELECT id FROM dag_runs WHERE finished_at < %s LIMIT %s)""",
                (cutoff, limit),
            )
            return cur.rowcount

    async def run_of(self, task_id: str) -> str | None:
        async with self.pool.connection() as conn:
            cur = await conn.execute("SELECT run_id::text FROM tasks WHERE id = %s", (task_id,))
            row = await cur.fetchone()
        return row[0] if row else None
