"""What a DAG step's end does to its run, in the same transaction as whatever ended it.

The completion path (a worker's outcomes), a cancel and the repair of an expired lease all run
``settle_statements`` for the tasks they may have ended, so a child is released exactly when its
last parent's success is recorded, and exactly once: ``tasks.settled`` marks a step whose end
was applied, and a repeated batch applies nothing twice. A step that fails (or is cancelled)
skips its waiting descendants; under ``fail_fast`` it cancels every step of its run not started.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from psycopg.rows import dict_row

from taskflow.keys import QueueRef
from taskflow.models import TaskRecord
from taskflow.store.rows import COLUMNS, TERMINAL_SQL, record_from_row


@dataclass
class Settled:
    """Redis follow-ups of steps that ended: children to dispatch, steps to withdraw."""

    released: list[TaskRecord] = field(default_factory=list)
    withdrawn: list[tuple[QueueRef, str]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.released or self.withdrawn)

    def merge(self, other: Settled) -> None:
        self.released += other.released
        self.withdrawn += other.withdrawn


# Descendants of steps that failed or were cancelled, still waiting: skipped, saying why.
_SKIP_DESCENDANTS: Any = b"""
WITH RECURSIVE ended AS (
    SELECT id, step FROM tasks
    WHERE id = ANY(%b::uuid[]) AND run_id IS NOT NULL AND NOT settled
      AND state IN ('failed', 'cancelled')
),
below (id, cause) AS (
    SELECT e.child_id, x.step FROM dag_edges e JOIN ended x ON x.id = e.parent_id
    UNION
    SELECT e.child_id, b.cause FROM dag_edges e JOIN below b ON b.id = e.parent_id
)
UPDATE tasks t SET state = 'cancelled', skipped = true, settled = true, updated_at = now(),
    finished_at = now(), error = 'skipped: step ''' || b.cause || ''' did not succeed'
FROM (SELECT DISTINCT ON (id) id, cause FROM below ORDER BY id, cause) b
WHERE t.id = b.id AND t.state = 'waiting'
"""

# fail_fast: a step that failed (or was cancelled) cancels every step of its run not started.
_FAIL_FAST: Any = b"""
WITH failing AS (
    SELECT DISTINCT ON (t.run_id) t.run_id, t.step FROM tasks t
    JOIN dag_runs r ON r.id = t.run_id
    WHERE t.id = ANY(%b::uuid[]) AND NOT t.settled AND NOT t.skipped
      AND t.state IN ('failed', 'cancelled') AND r.failure_policy = 'fail_fast'
    ORDER BY t.run_id, t.step
),
targets AS (
    SELECT t.id, t.state AS was, f.step AS cause FROM tasks t JOIN failing f ON f.run_id = t.run_id
    WHERE t.state IN ('waiting', 'scheduled', 'queued', 'retrying')
)
UPDATE tasks t SET state = 'cancelled', settled = true, updated_at = now(), finished_at = now(),
    skipped = x.was IN ('waiting', 'scheduled', 'queued'),
    error = 'cancelled: step ''' || x.cause || ''' failed and the run fails fast'
FROM targets x
WHERE t.id = x.id
RETURNING t.id::text, t.namespace, t.queue, x.was
"""

# Ended steps are settled; each success releases the children it was the last parent of.
_RELEASE_CHILDREN: Any = f"""
WITH ended AS (
    UPDATE tasks SET settled = true
    WHERE id = ANY(%b::uuid[]) AND run_id IS NOT NULL AND NOT settled
      AND state IN {TERMINAL_SQL}
    RETURNING id, state
),
counts AS (
    SELECT e.child_id, count(*) AS n FROM dag_edges e JOIN ended x ON x.id = e.parent_id
    WHERE x.state = 'succeeded' GROUP BY e.child_id
)
UPDATE tasks c SET pending_parents = c.pending_parents - counts.n, updated_at = now(),
    state = CASE WHEN c.state = 'waiting' AND c.pending_parents = counts.n
                 THEN 'queued' ELSE c.state END,
    run_at = CASE WHEN c.state = 'waiting' AND c.pending_parents = counts.n
                  THEN now() ELSE c.run_at END
FROM counts
WHERE c.id = counts.child_id
RETURNING {COLUMNS}, c.pending_parents = 0 AND c.state = 'queued' AS released
""".encode()

# A run's state follows its steps: done when none is active; failed when any did not succeed.
_RECOUNT_RUNS: Any = f"""
UPDATE dag_runs r SET
    state = CASE WHEN c.active > 0 THEN r.state WHEN c.bad = 0 THEN 'succeeded' ELSE 'failed' END,
    finished_at = CASE WHEN c.active = 0 THEN now() END,
    updated_at = now()
FROM (
    SELECT run_id, count(*) FILTER (WHERE state NOT IN {TERMINAL_SQL}) AS active,
           count(*) FILTER (WHERE state IN ('failed', 'cancelled')) AS bad
    FROM tasks
    WHERE run_id IN (SELECT run_id FROM tasks WHERE id = ANY(%b::uuid[]) AND run_id IS NOT NULL)
    GROUP BY run_id
) c
WHERE r.id = c.run_id AND r.state = 'running'
""".encode()

#: The statements to run, in order, after steps ``ids`` may have ended; ``settled_from``
#: reads their results. Each is a no-op for ids that are not steps or did not end.
SETTLE = (_SKIP_DESCENDANTS, _FAIL_FAST, _RELEASE_CHILDREN, _RECOUNT_RUNS)


def settle_statements(ids: Sequence[str]) -> list[tuple[Any, list[Any]]]:
    return [(sql, [list(ids)]) for sql in SETTLE]


async def settled_from(cursors: Sequence[Any]) -> Settled:
    """The Redis follow-ups from the cursors of ``settle_statements`` (in order)."""
    _, fail_fast, release, _ = cursors
    out = Settled()
    for task_id, namespace, queue, was in await fail_fast.fetchall():
        if was != "waiting":
            out.withdrawn.append((QueueRef(namespace, queue), task_id))
    release.row_factory = dict_row
    for row in await release.fetchall():
        if row.pop("released"):
            out.released.append(record_from_row(row))
    return out
