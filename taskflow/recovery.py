"""The repair transitions housekeeping runs: expired leases, tasks Redis does not know, and the
rebuild of the dispatch index after Redis lost its data.

Each asks PostgreSQL first what became of a task, then makes Redis agree:

* An expired lease: its attempt is ended as ``lost`` in PostgreSQL unless it already has an
  outcome there (its worker recorded it, then died before telling Redis). What PostgreSQL then
  says decides: a finished task is forgotten, a recorded retry waits for its backoff, anything
  else is ready again (a lost lease is counted only when this repair ended the attempt).
* A task PostgreSQL holds as pending that Redis does not know (an API that died between its
  commit and its enqueue, or a Redis that lost its data): read again after Redis said so, and
  dispatched only if it is still pending and unchanged. A completion writes PostgreSQL before
  Redis forgets the task, so a task that just finished is never dispatched again.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from taskflow.engine import Engine
from taskflow.keys import QueueRef
from taskflow.models import TERMINAL_STATES, PendingTask, TaskRecord, TaskState, utcnow
from taskflow.queue.dispatch import RedisAction, enqueue_item

log = logging.getLogger("taskflow.housekeeping")


@dataclass
class Reclaimed:
    leases: int = 0  # expired leases ended
    lost: int = 0  # of which this repair ended the attempt (the worker vanished)
    poisoned: int = 0  # tasks failed after too many lost leases


async def reclaim_expired(engine: Engine, ref: QueueRef, *, limit: int = 1000) -> Reclaimed:
    """End the expired leases of ``ref`` (at most ``limit``) as PostgreSQL decides."""
    report = Reclaimed()
    leases = await engine.dispatcher.expired(ref, limit=limit)
    if not leases:
        return report
    settings = engine.settings
    ended, settled = await engine.store.end_expired(
        [x for x in leases if x.token],
        max_lost=settings.max_lost_leases,
        poison_error=(
            f"gave up after {settings.max_lost_leases} attempts whose worker vanished "
            "(lease expired each time)"
        ),
    )
    outcomes = {o.task_id: o for o in ended}
    actions: list[RedisAction] = []
    for lease in leases:
        found = outcomes.get(lease.task_id)
        if not lease.token:
            actions.append(RedisAction(lease.task_id, "", "forget"))
        elif found is None or found.state is None:
            actions.append(RedisAction(lease.task_id, lease.token, "forget", ""))
        elif found.state in TERMINAL_STATES:
            if found.ended and found.state is TaskState.FAILED:
                report.poisoned += 1
            actions.append(RedisAction(lease.task_id, lease.token, "forget", found.state.value))
        elif found.state is TaskState.RETRYING and not found.ended:
            due = found.run_at or utcnow()
            arg = f"{int(due.timestamp() * 1000)}|{found.failures}"
            actions.append(RedisAction(lease.task_id, lease.token, "delay", arg))
        else:
            actions.append(
                RedisAction(lease.task_id, lease.token, "requeue", "1" if found.ended else "0")
            )
        report.lost += bool(found and found.ended)
    applied = await engine.dispatcher.reclaim(ref, actions)
    await engine.dispatcher.follow_up(settled.released, settled.withdrawn)
    report.leases = sum(applied)
    log.warning(
        "ended expired leases",
        extra={
            "queue": ref.qualified,
            "leases": report.leases,
            "lost": report.lost,
            "poisoned": report.poisoned,
            "tasks": [x.task_id for x in leases][:20],
        },
    )
    return report


async def dispatch_unknown(
    engine: Engine, tasks: Sequence[PendingTask | TaskRecord], *, grace: bool
) -> int:
    """Dispatch the pending ``tasks`` Redis does not know; with ``grace``, only those unchanged
    for the orphan grace period (younger ones may still be on their way to Redis)."""
    cutoff = utcnow() - timedelta(seconds=engine.settings.orphan_grace_seconds)
    by_queue: dict[QueueRef, list[PendingTask | TaskRecord]] = defaultdict(list)
    for t in tasks:
        if not grace or t.updated_at < cutoff:
            by_queue[t.queue_ref].append(t)
    added = 0
    for ref, group in by_queue.items():
        known = await engine.dispatcher.known(ref, [t.id for t in group])
        unknown = {t.id: t for t, k in zip(group, known, strict=True) if not k}
        if not unknown:
            continue
        # Read again after Redis answered: a task that finished in between is done now.
        fresh = await engine.store.get_many(list(unknown))
        items = [
            enqueue_item(t)
            for t in fresh
            if not t.done and t.updated_at == unknown[t.id].updated_at
        ]
        if items:
            added += await engine.dispatcher.enqueue(ref, items)
            log.warning(
                "dispatched tasks unknown to redis",
                extra={"queue": ref.qualified, "count": len(items)},
            )
    return added
