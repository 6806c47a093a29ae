"""Retry delays: exponential, capped, fully jittered."""

from __future__ import annotations

import random

from taskflow.backoff import backoff_ceiling, retry_delay
from taskflow.models import RetryPolicy

POLICY = RetryPolicy(initial_seconds=1.0, multiplier=2.0, max_seconds=30.0)


def test_ceiling_grows_exponentially_then_caps() -> None:
    assert [backoff_ceiling(POLICY, n) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]


def test_huge_failure_counts_stay_at_the_cap() -> None:
    assert backoff_ceiling(POLICY, 10_000) == 30.0


def test_delays_stay_within_zero_and_the_ceiling_and_spread_out() -> None:
    rng = random.Random(7)
    for failures in range(1, 10):
        ceiling = backoff_ceiling(POLICY, failures)
        delays = [retry_delay(POLICY, failures, rng) for _ in range(500)]
        assert all(0.0 <= d <= ceiling for d in delays)
        # Full jitter: draws cover the whole range rather than clustering at the ceiling.
        assert min(delays) < ceiling * 0.1 and max(delays) > ceiling * 0.9


def test_zero_initial_means_immediate_retries() -> None:
    policy = RetryPolicy(initial_seconds=0, multiplier=2, max_seconds=10)
    assert retry_delay(policy, 3) == 0.0
