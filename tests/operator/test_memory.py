"""The operator gives freed memory back: malloc_trim after a wave of frees, not every tick."""

from __future__ import annotations

import asyncio
import platform
from typing import Any

import pytest

from taskflow.procfs import rss_bytes
from taskflow_operator import memory
from taskflow_operator.memory import MB, Trimmer, TrimPolicy

glibc = pytest.mark.skipif(
    memory._glibc() is None or Trimmer.create() is None, reason="needs glibc 2.33+"
)


class FakeLibc:
    """mallinfo2 / malloc_trim of a C library whose free bytes the test sets."""

    def __init__(self) -> None:
        self.free = 0
        self.trims = 0
        self.on_trim: Any = lambda: None
        outer = self

        class Info:
            @property
            def fordblks(self) -> int:
                return outer.free

        def mallinfo2() -> Info:
            return Info()

        def malloc_trim(pad: int) -> int:
            self.trims += 1
            self.on_trim()
            return 1

        self.mallinfo2: Any = mallinfo2
        self.malloc_trim: Any = malloc_trim


def test_no_trim_while_the_heap_holds_little_free_memory() -> None:
    policy = TrimPolicy(step=32 * MB)
    assert not policy.due(0)
    assert not policy.due(31 * MB)


def test_a_wave_of_frees_is_trimmed_once() -> None:
    policy = TrimPolicy(step=32 * MB)
    assert policy.due(300 * MB)
    policy.trimmed(300 * MB)
    # The chunks stay free after a trim (their pages are what goes): no trim every tick.
    assert not policy.due(300 * MB)
    assert not policy.due(320 * MB)
    assert policy.due(340 * MB)


def test_after_reuse_the_next_wave_counts_from_the_low() -> None:
    policy = TrimPolicy(step=32 * MB)
    policy.trimmed(300 * MB)
    assert not policy.due(50 * MB)  # new objects took the free memory again
    assert not policy.due(80 * MB)
    assert policy.due(90 * MB)


def test_the_trimmer_trims_only_when_due() -> None:
    libc = FakeLibc()
    trimmer = Trimmer(libc, TrimPolicy(step=32 * MB))  # type: ignore[arg-type]
    assert not trimmer.check()
    libc.free = 100 * MB
    assert trimmer.check()
    assert not trimmer.check()
    assert libc.trims == 1
    assert trimmer.trims == 1


def test_the_trimmer_loop_ends_with_the_operator() -> None:
    libc = FakeLibc()
    libc.free = 100 * MB
    trimmer = Trimmer(libc)  # type: ignore[arg-type]

    async def scenario() -> None:
        stop, trimmed = asyncio.Event(), asyncio.Event()
        libc.on_trim = trimmed.set
        loop = asyncio.create_task(trimmer.run(stop, interval=0.01))
        await asyncio.wait_for(trimmed.wait(), timeout=5)
        stop.set()
        await asyncio.wait_for(loop, timeout=5)

    asyncio.run(scenario())
    assert libc.trims == 1


def test_nothing_is_done_on_another_c_library(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(platform, "libc_ver", lambda *a, **k: ("", ""))
    assert Trimmer.create() is None


@glibc
def test_freed_memory_goes_back_to_the_system() -> None:
    trimmer = Trimmer.create(TrimPolicy(step=32 * MB))
    assert trimmer is not None
    trimmer.check()  # whatever the test run left behind
    chunks = [bytes(1000) for _ in range(200_000)]  # ~200 MB, above pymalloc's sizes
    pinned = chunks[-1]  # the heap's top stays in use: free() alone gives nothing back
    high = rss_bytes()
    del chunks
    assert trimmer.check()
    assert rss_bytes() < high - 100 * MB
    assert pinned
