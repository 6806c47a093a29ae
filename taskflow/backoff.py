"""Retry delays: exponential backoff with full jitter, capped."""

from __future__ import annotations

import random

from taskflow.models import RetryPolicy


def backoff_ceiling(policy: RetryPolicy, failures: int) -> float:
    """The largest delay before the retry that follows the ``failures``-th failure (1-based)."""
    exponent = max(0, failures - 1)
    try:
        raw = policy.initial_seconds * policy.multiplier**exponent
    except OverflowError:
        raw = policy.max_seconds
    return min(policy.max_seconds, raw)


def retry_delay(policy: RetryPolicy, failures: int, rng: random.Random | None = None) -> float:
    """A delay drawn uniformly from ``[0, ceiling]`` ("full jitter")."""
    return (rng or random).uniform(0.0, backoff_ceiling(policy, failures))
