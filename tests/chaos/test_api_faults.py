"""The API server SIGKILLed while submissions are in flight (some between their commit and
their enqueue), then started again."""

from __future__ import annotations

import time

import pytest

from tests.chaos.checks import Findings
from tests.chaos.scenario import Scenario

pytestmark = pytest.mark.chaos


def test_api_killed_during_submits(chaos: Scenario) -> None:
    """Every task the client was told is accepted exists and runs once; a submission repeated
    after the kill is not duplicated; and the client's own retries outlast the restart (no
    caller sees UNAVAILABLE)."""
    cluster = chaos.start()
    load = chaos.stream(chaos.mixed_plans(), threads=4)
    kills = max(1, chaos.scale.faults // 3)
    downtime: list[float] = []
    for _ in chaos.spread(load, kills):
        down = time.monotonic()
        cluster.kill_api()
        time.sleep(0.5)  # the outage itself, before the orchestrator restarts it
        cluster.start_api()
        downtime.append(time.monotonic() - down)
    fault_end = cluster.timeline.mark("last api restart")

    def callers_saw_no_outage(f: Findings) -> list[str]:
        f.notes["api_down_s"] = [round(d, 1) for d in downtime]
        surfaced = f.submits["surfaced_errors"]
        if surfaced:
            return [
                f"submit calls failed after the client's own retries while the API restarted "
                f"(down {max(downtime):.1f}s): {surfaced}; the caller had to resubmit "
                f"{f.submits['retried_keys']} task(s)"
            ]
        return []

    chaos.finish(load, fault_end=fault_end, inspect=callers_saw_no_outage, notes={"kills": kills})
