"""PostgreSQL restarted or killed while tasks are submitted, run and recorded. Workers keep
their leases in Redis meanwhile, so nothing needs to run twice; submissions refused during the
outage are repeated with their idempotency key."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from tests.chaos.scenario import Scenario

pytestmark = pytest.mark.chaos


def outage_mid_stream(chaos: Scenario, hurt: Callable[[], None], **config: object) -> None:
    cluster = chaos.start(**config)
    load = chaos.stream(chaos.mixed_plans())
    chaos.when_accepted(load, 0.4)
    hurt()
    fault_end = cluster.timeline.mark("postgres accepting connections again")
    chaos.finish(load, fault_end=fault_end)


def test_postgres_restarted(chaos: Scenario) -> None:
    def restart() -> None:
        chaos.cluster.timeline.mark("postgres fast shutdown")
        chaos.cluster.postgres.restart()

    outage_mid_stream(chaos, restart)


def test_postgres_killed(chaos: Scenario) -> None:
    def crash() -> None:
        chaos.cluster.postgres.crash()
        chaos.cluster.timeline.mark("postgres SIGKILLed (postmaster and backends)")
        time.sleep(1.0)  # the outage itself
        chaos.cluster.postgres.start()

    outage_mid_stream(chaos, crash, pg_fsync=True)  # fsync: a crash loses nothing committed
