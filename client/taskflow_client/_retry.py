"""When a failed call is repeated, how long the client waits first, and when it gives up.

A call is repeated while three limits hold: its code is one that makes repeating safe, the
retry budget (seconds since the call began) is not spent, and the call's deadline leaves
time for another attempt. ``retries``, when given, also caps the number of attempts.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field

import grpc

from ._errors import InvalidArgumentError, TaskFlowError, from_rpc_error, status_of

__all__ = [
    "DEFAULT_RETRY_BUDGET",
    "RETRY_BUDGET_ENV",
    "RETRY_READ",
    "RETRY_WRITE",
    "Attempts",
    "Backoff",
    "RetryRules",
    "budget_from_env",
    "valid_budget",
]

RETRY_BUDGET_ENV = "TASKFLOW_RETRY_BUDGET"
DEFAULT_RETRY_BUDGET = 30.0
"""Seconds a call keeps being retried by default: long enough to outlast an API restart."""

MIN_ATTEMPT_SECONDS = 0.1
"""No attempt is started with less of the call's deadline left: it could not get an answer."""

RETRY_WRITE: frozenset[grpc.StatusCode] = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED}
)
"""Codes after which a call that changes state is repeated: the server could not be reached,
or it went away in the middle of the call (a server that shuts down cancels the calls it
still has). Submissions carry an idempotency key and cancelling twice cancels once, so
repeating never does the work twice. (A client that is closed does not repeat.)"""

RETRY_READ: frozenset[grpc.StatusCode] = RETRY_WRITE | {grpc.StatusCode.DEADLINE_EXCEEDED}
"""Codes after which a call that only reads is repeated."""


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter: after the n-th failure wait a random time between half
    and all of ``initial x multiplier^(n-1)``, capped at ``maximum`` seconds."""

    initial: float = 0.1
    multiplier: float = 2.0
    maximum: float = 2.0

    def delay(self, failures: int) -> float:
        """Seconds to wait after the ``failures``-th consecutive failure (counting from 1)."""
        exponent = min(max(failures - 1, 0), 64)
        ceiling = min(self.maximum, self.initial * self.multiplier**exponent)
        return random.uniform(ceiling / 2, ceiling)


@dataclass(frozen=True)
class RetryRules:
    """How one client repeats failed calls.

    ``budget``: seconds after a call begins during which a failed attempt is repeated
    (``0``: never; ``math.inf``: until the deadline). ``attempts``: the most attempts one
    call makes, the first included (``None``: as many as the budget allows).
    """

    budget: float = DEFAULT_RETRY_BUDGET
    attempts: int | None = None
    backoff: Backoff = field(default_factory=Backoff)

    def start(self, retry_on: frozenset[grpc.StatusCode], timeout: float | None) -> Attempts:
        """The attempts of one call that may repeat after ``retry_on`` and must end within
        ``timeout`` seconds from now (``None``: no deadline)."""
        return Attempts(self, retry_on, timeout)


class Attempts:
    """The attempts of one call: the time each may take, and the pause after each failure."""

    def __init__(
        self, rules: RetryRules, retry_on: frozenset[grpc.StatusCode], timeout: float | None
    ) -> None:
        self.rules = rules
        self.retry_on = retry_on
        self.started = time.monotonic()
        self.deadline = None if timeout is None else self.started + timeout
        self.retry_until = self.started + rules.budget
        self.failures = 0

    def timeout(self) -> float | None:
        """Seconds the next attempt may take: what is left of the call's deadline."""
        if self.deadline is None:
            return None
        return max(self.deadline - time.monotonic(), 0.0)

    def pause_after(self, error: grpc.RpcError) -> float:
        """Seconds to wait before repeating the attempt that failed with ``error``; raises the
        matching ``TaskFlowError`` when the call must give up instead."""
        pause = self.next_pause(status_of(error)[0])
        if pause is None:
            raise self.gave_up(error) from error
        return pause

    def next_pause(self, code: grpc.StatusCode) -> float | None:
        """Seconds to wait before the next attempt after a failure with ``code``; ``None``
        when there is none to make (the code is final, or the budget, the attempt limit or
        the deadline is spent)."""
        self.failures += 1
        if code not in self.retry_on:
            return None
        attempts = self.rules.attempts
        if attempts is not None and self.failures >= attempts:
            return None
        now = time.monotonic()
        if now >= self.retry_until:
            return None
        pause = min(self.rules.backoff.delay(self.failures), self.retry_until - now)
        if self.deadline is not None and now + pause + MIN_ATTEMPT_SECONDS > self.deadline:
            return None
        return pause

    def gave_up(self, error: grpc.RpcError) -> TaskFlowError:
        """The error a call raises after its last failed attempt."""
        code, _ = status_of(error)
        if self.failures > 1 and code in self.retry_on:
            spent = time.monotonic() - self.started
            return from_rpc_error(error, f"gave up after {self.failures} attempts in {spent:.1f}s")
        return from_rpc_error(error)


def valid_budget(value: object, name: str) -> float:
    """``value`` as a retry budget in seconds; ``InvalidArgumentError`` (a ``ValueError``)
    naming ``name`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise InvalidArgumentError(f"{name}: expected a number of seconds >= 0, got {value!r}")
    if value < 0:
        raise InvalidArgumentError(f"{name}: must be at least 0 seconds, got {value!r}")
    return float(value)


def budget_from_env(text: str) -> float:
    """The retry budget ``TASKFLOW_RETRY_BUDGET`` gives; ``InvalidArgumentError`` (a
    ``ValueError``) naming it otherwise."""
    try:
        value = float(text)
    except ValueError:
        raise InvalidArgumentError(
            f"{RETRY_BUDGET_ENV}: expected a number of seconds >= 0, got {text!r}"
        ) from None
    return valid_budget(value, RETRY_BUDGET_ENV)
