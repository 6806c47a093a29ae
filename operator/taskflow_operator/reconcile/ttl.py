"""Deletes finished Tasks once their ``ttlSecondsAfterFinished`` has passed, while this
operator leads (like Kubernetes' TTL-after-finished controller does for Jobs).

What is due comes from a kopf index of the finished Tasks that set a TTL (kopf watches Tasks
anyway): a pass costs nothing when nothing is due, and never lists Tasks.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from taskflow.waiting import stopped_within
from taskflow_operator.context import OperatorContext
from taskflow_operator.crd import TASK
from taskflow_operator.taskstatus import is_finished

log = logging.getLogger("taskflow.operator.ttl")

Key = tuple[str, str]  # (namespace, name)


@dataclass(frozen=True)
class Expiring:
    namespace: str
    name: str
    uid: str
    #: When the Task may be deleted.
    at: datetime


#: kopf's index of finished Tasks with a TTL.
ExpiringIndex = Mapping[Key, Iterable[Expiring]]


def expiry(body: Any) -> datetime | None:
    """When a finished Task's ``ttlSecondsAfterFinished`` runs out (None: never, or not yet
    finished)."""
    ttl = (body.get("spec") or {}).get("ttlSecondsAfterFinished")
    status = body.get("status") or {}
    if ttl is None or not is_finished(dict(status)):
        return None
    done = status.get("completionTime")
    if not done:
        return datetime.min.replace(tzinfo=UTC)  # finished without a time: due now
    finished = datetime.strptime(done, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    return finished + timedelta(seconds=int(ttl))


def expiring_entry(body: Any) -> dict[Key, Expiring]:
    """The index entry of a Task (empty: it has no TTL, is not finished, or is being deleted)."""
    meta = body.get("metadata") or {}
    at = None if meta.get("deletionTimestamp") else expiry(body)
    if at is None:
        return {}
    entry = Expiring(meta["namespace"], meta["name"], meta["uid"], at)
    return {(entry.namespace, entry.name): entry}


class TtlSweeper:
    """Deletes what the index says is due; each object once (the index drops it when kopf sees
    its deletion)."""

    def __init__(self, ctx: OperatorContext, index: ExpiringIndex) -> None:
        self.ctx = ctx
        self.index = index
        self._deleting: set[str] = set()

    def due(self, now: datetime) -> list[Expiring]:
        entries = [e for store in list(self.index.values()) for e in store]
        self._deleting &= {e.uid for e in entries}
        return [e for e in entries if e.at <= now and e.uid not in self._deleting]

    async def sweep(self, now: datetime | None = None) -> int:
        deleted = 0
        for entry in self.due(now or datetime.now(UTC)):
            await self.ctx.kube.delete_object(
                TASK.plural, entry.namespace, entry.name, uid=entry.uid
            )
            self._deleting.add(entry.uid)
            log.info("deleted finished task", extra={"task": f"{entry.namespace}/{entry.name}"})
            deleted += 1
        return deleted

    async def run(self, stop: asyncio.Event) -> None:
        """Every ``task_poll_seconds`` while this operator leads, until ``stop``."""
        while not stop.is_set():
            if self.ctx.leadership.active:
                try:
                    await self.sweep()
                except Exception:
                    log.exception("deleting expired tasks failed; retrying")
            await stopped_within(stop, self.ctx.config.task_poll_seconds)
