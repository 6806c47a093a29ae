"""No fault at all, on a machine whose cores are busy, with a short orphan grace: every task
runs exactly as often as its plan says."""

from __future__ import annotations

import os

import pytest

from tests.chaos.scenario import Scenario

pytestmark = pytest.mark.chaos


def test_no_fault_busy_machine(chaos: Scenario) -> None:
    # A long lease: a busy machine may delay heartbeats, and lease expiry is not under test.
    cluster = chaos.start(
        orphan_grace_seconds=1.0,
        sweep_interval=0.2,
        lease_seconds=15.0,
        concurrency=max(4, chaos.scale.concurrency // 2),
    )
    cluster.busy_loops(os.cpu_count() or 2)
    # Far faster than the workers drain: most tasks wait in the queue longer than the orphan
    # grace, so each sweep looks at them while they run and finish.
    load = chaos.stream(chaos.mixed_plans(), rate=chaos.scale.rate * 3)
    chaos.finish(load, notes={"orphan_grace_s": 1.0, "sweep_s": 0.2})
