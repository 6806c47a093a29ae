"""Batched mirroring: the status of many objects kept in step with the engine, one read a tick.

Objects that follow an engine record (a ``Task`` its task, a ``DagRun`` its run) are listed in
a kopf index (``followed``: what kopf already watches, nothing is listed or read per object).
Every tick a :class:`BatchMirror` reads the records of *all* of them with one engine query,
renders each object's wanted status, and patches only the objects whose status changed.

An object deleted while a tick is under way is skipped: it is no longer in the index when its
patch is due, or the patch finds it gone (404).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from taskflow.errors import Unavailable
from taskflow.waiting import stopped_within
from taskflow_operator.taskstatus import status_changed

log = logging.getLogger("taskflow.operator.mirror")

R = TypeVar("R")
Key = tuple[str, str]  # (namespace, name)
#: A kopf index (``kopf.Index``) of followed objects, or anything shaped like one.
FollowedIndex = Mapping[Key, Iterable["Followed"]]


@dataclass(frozen=True)
class Followed:
    """One object that mirrors an engine record, as an index holds it."""

    namespace: str
    name: str
    uid: str
    #: The engine id the object follows (a task id, a run id).
    ref: str
    status: Mapping[str, Any]

    @property
    def key(self) -> Key:
        return (self.namespace, self.name)


def followed_entry(body: Mapping[str, Any], ref_field: str) -> dict[Key, Followed]:
    """The index entry of an object (empty: not followed): submitted, not being deleted.

    Empty, not None: kopf keeps an object's previous entry when its indexer returns None."""
    meta = body.get("metadata") or {}
    status = dict(body.get("status") or {})
    ref = status.get(ref_field)
    if not ref or meta.get("deletionTimestamp"):
        return {}
    entry = Followed(meta["namespace"], meta["name"], meta["uid"], str(ref), status)
    return {entry.key: entry}


#: Read the records of these refs; a ref missing from the result is gone from the engine.
Fetch = Callable[[list[str]], Awaitable[Mapping[str, R]]]
#: The wanted status of an object given its record (``None`` when the record is missing).
Render = Callable[[Followed, "R | None"], dict[str, Any]]
#: Patch an object's status; False when the object is gone.
Patch = Callable[[str, str, dict[str, Any]], Awaitable[bool]]
#: Told of every status written (events, metrics).
Written = Callable[[Followed, dict[str, Any]], None]


class BatchMirror(Generic[R]):
    """Keeps the objects of one index in step with the engine, one query per tick."""

    def __init__(
        self,
        kind: str,
        index: FollowedIndex,
        fetch: Fetch[R],
        render: Render[R],
        patch: Patch,
        *,
        is_done: Callable[[Mapping[str, Any]], bool],
        written: Written | None = None,
        concurrency: int = 32,
    ) -> None:
        self.kind = kind
        self.index = index
        self.fetch = fetch
        self.render = render
        self.patch = patch
        self.is_done = is_done
        self.on_written = written
        self._limit = asyncio.Semaphore(concurrency)
        #: What this mirror wrote and the index may not show yet, by key: (uid, status).
        self._written: dict[Key, tuple[str, dict[str, Any]]] = {}

    def followed(self) -> list[Followed]:
        out: list[Followed] = []
        for store in list(self.index.values()):
            for entry in store:
                if not self.is_done(entry.status):
                    out.append(entry)
        return out

    async def tick(self) -> int:
        """One pass: read every followed record at once, patch what changed; the patch count."""
        entries = self.followed()
        self._forget_caught_up(entries)
        if not entries:
            return 0
        records = await self.fetch(sorted({e.ref for e in entries}))
        changes: list[tuple[Followed, dict[str, Any]]] = []
        for entry in entries:
            current = self._current(entry)
            wanted = self.render(entry, records.get(entry.ref))
            if status_changed(dict(current), wanted):
                changes.append((entry, wanted))
        if not changes:
            return 0
        results = await asyncio.gather(*(self._write(e, w) for e, w in changes))
        return sum(results)

    def _current(self, entry: Followed) -> Mapping[str, Any]:
        mine = self._written.get(entry.key)
        if mine is not None and mine[0] == entry.uid:
            return mine[1]
        return entry.status

    def _forget_caught_up(self, entries: list[Followed]) -> None:
        """Drop what the index now shows (or what is no longer followed)."""
        live = {e.key: e for e in entries}
        for key, (uid, status) in list(self._written.items()):
            entry = live.get(key)
            if entry is None or entry.uid != uid or not status_changed(dict(entry.status), status):
                del self._written[key]

    def _still_followed(self, entry: Followed) -> bool:
        store = self.index.get(entry.key)
        return store is not None and any(e.uid == entry.uid for e in store)

    async def _write(self, entry: Followed, wanted: dict[str, Any]) -> int:
        async with self._limit:
            if not self._still_followed(entry):
                return 0  # deleted (or replaced) while this tick ran
            if not await self.patch(entry.namespace, entry.name, wanted):
                return 0
        self._written[entry.key] = (entry.uid, wanted)
        if self.on_written is not None:
            self.on_written(entry, wanted)
        return 1

    async def run(
        self, stop: asyncio.Event, interval: float, active: Callable[[], bool] = lambda: True
    ) -> None:
        """A tick every ``interval`` seconds while ``active()``, until ``stop``."""
        while not stop.is_set():
            if active():
                try:
                    await self.tick()
                except (Unavailable, OSError) as exc:
                    log.warning("mirroring paused: %s", exc, extra={"kind": self.kind})
                except Exception:
                    log.exception("mirroring failed; retrying", extra={"kind": self.kind})
            await stopped_within(stop, interval)
