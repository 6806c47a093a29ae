"""Watches shared by one poller: one PostgreSQL query per tick for every watched record (tasks,
or DAG runs with their steps: one hub per kind).

A watcher registers the snapshot it has already sent; the hub's single loop reads all watched
tasks at once and wakes only the watchers whose task changed since their snapshot. With no
watchers the loop sleeps until one arrives, so an idle server does not query at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Sequence
from datetime import datetime
from typing import Generic, Protocol, TypeVar

from taskflow.errors import NotFound, Unavailable
from taskflow.models import TaskRecord, TaskState, utcnow
from taskflow.waiting import cancel_and_wait

log = logging.getLogger("taskflow.api.watch")


class Watchable(Protocol):
    """A record a hub can watch: tasks and DAG runs."""

    @property
    def id(self) -> str: ...

    @property
    def done(self) -> bool: ...


R = TypeVar("R", bound=Watchable)
FetchMany = Callable[[Sequence[str]], Awaitable[Sequence[R]]]
Version = Callable[[R, datetime], Hashable]

#: Ids per query; a tick with more watched tasks runs several queries.
CHUNK = 5000


def task_version(task: TaskRecord, now: datetime) -> tuple[datetime, TaskState]:
    return task.updated_at, task.visible_state(now)


class Watcher(Generic[R]):
    """One client's view: the last snapshot it saw and whether a newer one is waiting."""

    def __init__(self, record: R, version: Version[R]) -> None:
        self.task_id = record.id
        self._version_of = version
        self.version = version(record, utcnow())
        self._latest: R | None = None
        self._error: Exception | None = None
        self._changed = asyncio.Event()

    @property
    def pending(self) -> bool:
        """True when a newer snapshot (or an error) waits to be taken by ``next``."""
        return self._changed.is_set()

    def offer(self, task: R, now: datetime) -> None:
        version = self._version_of(task, now)
        if version != self.version:
            self.version = version
            self._latest = task
            self._changed.set()

    def fail(self, error: Exception) -> None:
        self._error = error
        self._changed.set()

    async def next(self) -> R:
        """The next changed snapshot (only the newest when several changes came in between)."""
        await self._changed.wait()
        self._changed.clear()
        if self._error is not None:
            raise self._error
        task, self._latest = self._latest, None
        assert task is not None
        return task


class WatchHub(Generic[R]):
    """Polls PostgreSQL for every watched task in one loop per server."""

    def __init__(
        self,
        fetch_many: FetchMany[R],
        *,
        version: Version[R] = task_version,  # type: ignore[assignment]
        min_interval: float = 0.05,
        max_interval: float = 0.1,
        unavailable_after: float = 5.0,
    ) -> None:
        self._fetch_many = fetch_many
        self._version = version
        self._min_interval = min_interval
        self._max_interval = max_interval
        self._unavailable_after = unavailable_after
        self._watchers: dict[str, set[Watcher[R]]] = {}
        self._arrived = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def watched(self) -> int:
        """Number of tasks being watched (by one or more watchers)."""
        return len(self._watchers)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="watch-hub")

    async def close(self) -> None:
        """Stop polling; every open watch ends with ``Unavailable`` (clients reconnect)."""
        self._closed = True
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None
        self._fail_all(Unavailable("the server is shutting down; watch again"))

    @contextlib.asynccontextmanager
    async def subscribe(self, task: R) -> AsyncIterator[Watcher[R]]:
        """Watch ``task`` for changes after the given snapshot; unsubscribes on exit."""
        if self._closed:
            raise Unavailable("the server is shutting down; watch again")
        watcher = Watcher(task, self._version)
        self._watchers.setdefault(task.id, set()).add(watcher)
        self._arrived.set()
        try:
            yield watcher
        finally:
            peers = self._watchers.get(task.id)
            if peers is not None:
                peers.discard(watcher)
                if not peers:
                    del self._watchers[task.id]

    async def _run(self) -> None:
        interval = self._min_interval
        failing_since: float | None = None
        loop = asyncio.get_running_loop()
        while True:
            if not self._watchers:
                self._arrived.clear()
                await self._arrived.wait()
                interval = self._min_interval
            try:
                changed = await self._poll()
                failing_since = None
            except Exception as exc:
                failing_since = failing_since if failing_since is not None else loop.time()
                if loop.time() - failing_since >= self._unavailable_after:
                    log.warning("watch poll failing; ending %d watch(es): %s", self.watched, exc)
                    self._fail_all(Unavailable(f"PostgreSQL: {exc}"))
                    failing_since = None
                changed = False
            # Quick while tasks change, easing off to max_interval while they do not.
            interval = self._min_interval if changed else min(self._max_interval, interval * 1.5)
            await asyncio.sleep(interval)

    async def _poll(self) -> bool:
        """Read every watched task once; wake the watchers of those that changed."""
        ids = list(self._watchers)
        found: dict[str, R] = {}
        for start in range(0, len(ids), CHUNK):
            found.update((t.id, t) for t in await self._fetch_many(ids[start : start + CHUNK]))
        now = utcnow()
        changed = False
        for task_id in ids:
            watchers = self._watchers.get(task_id, set())
            task = found.get(task_id)
            for watcher in list(watchers):
                if task is None:
                    watcher.fail(NotFound(f"task {task_id} not found (deleted)"))
                    continue
                before = watcher.version
                watcher.offer(task, now)
                changed = changed or watcher.version != before
        return changed

    def _fail_all(self, error: Exception) -> None:
        for watchers in self._watchers.values():
            for watcher in watchers:
                watcher.fail(error)
