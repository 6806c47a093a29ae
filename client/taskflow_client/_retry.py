"""When and how long the client waits before repeating a call that failed."""

from __future__ import annotations

import random
from dataclasses import dataclass

import grpc

__all__ = ["RETRY_READ", "RETRY_WRITE", "Backoff"]

RETRY_WRITE: frozenset[grpc.StatusCode] = frozenset({grpc.StatusCode.UNAVAILABLE})
"""Codes after which a call that changes state is repeated (it is made safe to repeat)."""

RETRY_READ: frozenset[grpc.StatusCode] = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}
)
"""Codes after which a call that only reads is repeated."""


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter: after the n-th failure wait a random time between half
    and all of ``initial x multiplier^(n-1)``, capped at ``maximum`` seconds. At most
    ``attempts`` attempts are made, the first included."""

    attempts: int
    initial: float = 0.1
    multiplier: float = 2.0
    maximum: float = 2.0

    def delay(self, failures: int) -> float:
        """Seconds to wait after the ``failures``-th consecutive failure (counting from 1)."""
        ceiling = min(self.maximum, self.initial * self.multiplier ** max(failures - 1, 0))
        return random.uniform(ceiling / 2, ceiling)
