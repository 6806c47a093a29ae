"""Giving freed memory back to the system (glibc only; elsewhere nothing is done).

Once thousands of Tasks have finished or been deleted, what they cost while they changed at
once (watch events, bodies, the client's responses, the mirror's reads) is freed, but glibc's
malloc keeps the freed chunks in its heap and the process's RSS stays at its peak (a
10,000-run: 130 MB free in the heap, RSS 309 MB after every object was deleted).

:class:`Trimmer` is a loop of the operator: every few seconds it reads how much free memory
malloc holds (``mallinfo2``: no system call) and calls ``malloc_trim(0)`` when that grew by
:attr:`TrimPolicy.step` since the last trim, so it trims after a wave of finished or deleted
Tasks, not every tick (a trim of 130 MB takes a few tens of milliseconds).

Capping malloc's arenas (``M_ARENA_MAX``) was measured too and left out: the Kubernetes
client's threads held 8.7 MB of RSS in their arenas at 10,000 Tasks, 4.1 MB with two arenas,
and the main heap took up the difference. What stays after a trim is mostly CPython's own
object arenas, kept by a few live objects each; ``malloc_trim`` cannot return those.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import platform
from dataclasses import dataclass

from taskflow.procfs import RssUnavailable, rss_bytes
from taskflow.waiting import stopped_within

log = logging.getLogger("taskflow.operator.memory")

MB = 2**20


class _Mallinfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _glibc() -> ctypes.CDLL | None:
    """The process's C library when it is glibc (musl has no malloc_trim)."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018  # a glibc-only symbol
    except (OSError, AttributeError):
        return None
    return libc


@dataclass
class TrimPolicy:
    """When to trim: malloc holds ``step`` more free bytes than right after the last trim."""

    step: int = 32 * MB
    #: The free bytes malloc held when last trimmed (a trim does not lower them: the pages
    #: behind free chunks are released, the chunks stay free).
    at_last_trim: int = 0

    def due(self, free: int) -> bool:
        if free < self.at_last_trim:
            # Reused since: the next wave is measured from here.
            self.at_last_trim = free
        return free - self.at_last_trim >= self.step

    def trimmed(self, free: int) -> None:
        self.at_last_trim = free


class Trimmer:
    """``malloc_trim(0)`` when :class:`TrimPolicy` says so; one cheap check every ``interval``."""

    def __init__(self, libc: ctypes.CDLL, policy: TrimPolicy | None = None) -> None:
        self._libc = libc
        self._libc.mallinfo2.restype = _Mallinfo2
        self._libc.malloc_trim.argtypes = [ctypes.c_size_t]
        self.policy = policy or TrimPolicy()
        #: Trims done, and what they released (bytes of RSS).
        self.trims = 0
        self.released = 0

    @classmethod
    def create(cls, policy: TrimPolicy | None = None) -> Trimmer | None:
        """A trimmer, or None when the C library is not glibc 2.33+ (no ``mallinfo2``)."""
        libc = _glibc()
        if libc is None or not hasattr(libc, "mallinfo2"):
            return None
        return cls(libc, policy)

    def free_bytes(self) -> int:
        return int(self._libc.mallinfo2().fordblks)

    def check(self) -> bool:
        """Trim when due; whether it did."""
        free = self.free_bytes()
        if not self.policy.due(free):
            return False
        before = _rss()
        self._libc.malloc_trim(0)
        after = _rss()
        self.policy.trimmed(self.free_bytes())
        self.trims += 1
        self.released += max(0, before - after)
        log.debug(
            "malloc_trim: %.0f MB free in the heap, RSS %.0f -> %.0f MB",
            free / MB,
            before / MB,
            after / MB,
        )
        return True

    async def run(self, stop: asyncio.Event, interval: float = 5.0) -> None:
        while not await stopped_within(stop, interval):
            self.check()


def _rss() -> int:
    """This process's RSS; 0 where ``/proc`` cannot tell (a trim then counts as releasing none)."""
    try:
        return rss_bytes()
    except RssUnavailable:
        return 0
