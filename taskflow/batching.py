"""Group commit: concurrent callers share one flush of a batch."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Coalescer(Generic[T, R]):
    """Collects items from concurrent ``submit`` calls and flushes them together.

    ``flush`` receives every waiting item and returns one result per item, in order. While a
    flush runs, new items wait for the next one, so under load batches grow by themselves and
    with a single caller nothing waits for a timer.
    """

    def __init__(
        self, flush: Callable[[Sequence[T]], Awaitable[Sequence[R]]], max_batch: int = 1000
    ) -> None:
        self._flush = flush
        self._max_batch = max_batch
        self._pending: list[tuple[Sequence[T], asyncio.Future[Sequence[R]]]] = []
        self._lock = asyncio.Lock()

    async def submit(self, items: Sequence[T]) -> Sequence[R]:
        fut: asyncio.Future[Sequence[R]] = asyncio.get_running_loop().create_future()
        self._pending.append((items, fut))
        async with self._lock:
            if not fut.done():
                await self._drain(fut)
        return await fut

    async def _drain(self, own: asyncio.Future[Sequence[R]]) -> None:
        while self._pending and not own.done():
            batch: list[tuple[Sequence[T], asyncio.Future[Sequence[R]]]] = []
            size = 0
            while self._pending and (
                not batch or size + len(self._pending[0][0]) <= self._max_batch
            ):
                entry = self._pending.pop(0)
                batch.append(entry)
                size += len(entry[0])
            flat = [item for items, _ in batch for item in items]
            try:
                results = await self._flush(flat)
            except Exception as exc:
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            offset = 0
            for items, fut in batch:
                if not fut.done():
                    fut.set_result(results[offset : offset + len(items)])
                offset += len(items)
