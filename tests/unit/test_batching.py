"""Group commit: concurrent callers share flushes, and each gets its own results."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from taskflow.batching import Coalescer


async def test_concurrent_callers_share_flushes_and_get_their_own_results() -> None:
    flushes: list[list[int]] = []

    async def flush(items: Sequence[int]) -> list[int]:
        flushes.append(list(items))
        await asyncio.sleep(0.01)
        return [i * 10 for i in items]

    batcher: Coalescer[int, int] = Coalescer(flush)
    results = await asyncio.gather(*(batcher.submit([i, i + 100]) for i in range(50)))
    assert [list(r) for r in results] == [[i * 10, (i + 100) * 10] for i in range(50)]
    assert len(flushes) < 50
    assert sorted(x for f in flushes for x in f) == sorted(
        [i for i in range(50)] + [i + 100 for i in range(50)]
    )


async def test_a_failed_flush_fails_its_callers_only() -> None:
    calls = 0

    async def flush(items: Sequence[int]) -> list[int]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("store down")
        return list(items)

    batcher: Coalescer[int, int] = Coalescer(flush)
    with pytest.raises(RuntimeError):
        await batcher.submit([1])
    assert list(await batcher.submit([2])) == [2]
