"""Sync handlers that ignore cancellation keep their threads after a cancel; the worker must
not count those slots as free."""

from __future__ import annotations

import pytest

from tests.chaos.checks import read_starts
from tests.chaos.load import TaskPlan, uniform_plans
from tests.chaos.processes import wait_until
from tests.chaos.scenario import Scenario

pytestmark = pytest.mark.chaos

CONCURRENCY = 4
STUBBORN_SECONDS = 8.0
QUICK_TIMEOUT = 3.0


def test_sync_handlers_ignoring_cancel(chaos: Scenario) -> None:
    """Fill every slot with sync handlers that never look at ``ctx.cancelled``, cancel them,
    then send quick sync tasks (timeout shorter than the stubborn ones take): every quick task
    starts and succeeds; none times out without having started."""
    cluster = chaos.start(workers=1, concurrency=CONCURRENCY)
    stubborn = [
        TaskPlan(
            key=f"{chaos.name}-stubborn-{i}",
            kind="stubborn",
            handler="stubborn",
            payload={"seconds": STUBBORN_SECONDS},
            max_retries=0,
            expect="cancelled",
            starts=1,
        )
        for i in range(CONCURRENCY)
    ]
    first = chaos.stream(stubborn, rate=100.0)
    assert first.join(timeout=60), "the stubborn tasks were not accepted"
    ids = list(first.log.accepted.values())
    wait_until(
        lambda: {s.task_id for s in read_starts(cluster.start_log)} >= set(ids),
        30.0,
        f"all {len(ids)} stubborn handlers to start",
    )
    with cluster.client() as client:
        for task_id in ids:
            client.cancel(task_id)
    cluster.timeline.mark(f"{len(ids)} stubborn handlers cancelled (they keep running)")
    quick = chaos.stream(
        uniform_plans(
            f"{chaos.name}-quick",
            max(5 * CONCURRENCY, chaos.scale.tasks // 15),
            handler="work_sync",
            timeout=QUICK_TIMEOUT,
            max_retries=0,
        ),
        rate=50.0,
    )
    chaos.finish(
        first, quick, notes={"stubborn_s": STUBBORN_SECONDS, "quick_timeout_s": QUICK_TIMEOUT}
    )
