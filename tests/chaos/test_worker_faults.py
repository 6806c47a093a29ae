"""Workers that die (SIGKILL) or are told to leave (SIGTERM) while the stream runs."""

from __future__ import annotations

import pytest

from tests.chaos.checks import Findings, listing
from tests.chaos.load import uniform_plans
from tests.chaos.scenario import Scenario

pytestmark = pytest.mark.chaos


def test_workers_killed(chaos: Scenario) -> None:
    """SIGKILL the busiest worker again and again and start a new one each time: their tasks
    run again elsewhere once the lease runs out; nothing is lost or recorded twice."""
    cluster = chaos.start(workers=chaos.scale.workers + 1, lease_seconds=2.0)
    load = chaos.stream(chaos.mixed_plans())
    faults = chaos.scale.faults
    killed_running = 0
    for _ in chaos.spread(load, faults):
        victim = cluster.busiest_worker()
        killed_running += max(0, cluster.in_flight(victim))
        cluster.kill_worker(victim)
        cluster.start_worker()
    fault_end = cluster.timeline.mark("last kill")

    def hit_something(f: Findings) -> list[str]:
        if killed_running == 0:
            return ["no worker was running a task when it was killed: nothing was tested"]
        return []

    chaos.finish(
        load,
        fault_end=fault_end,
        reruns_allowed=True,  # a killed worker's tasks run again: at-least-once delivery
        inspect=hit_something,
        notes={"kills": faults, "tasks_running_in_killed_workers": killed_running},
    )


def test_workers_drained(chaos: Scenario) -> None:
    """SIGTERM the busiest worker mid-stream with a drain grace shorter than the long tasks:
    it exits cleanly, the tasks it could not finish are handed back (a ``released`` attempt)
    and run again on another worker as a later attempt."""
    cluster = chaos.start(workers=chaos.scale.workers + 1, drain_grace=0.5)
    load = chaos.stream(chaos.mixed_plans())
    # Beside the mix, a trickle of tasks longer than the grace, so every drain interrupts some.
    seconds = chaos.scale.tasks / chaos.scale.rate
    long = chaos.stream(
        uniform_plans(f"{chaos.name}-long", int(seconds * 2) + 2, kind="long", ms=3000), rate=2.0
    )
    faults = chaos.scale.faults
    for _ in chaos.spread(load, faults):
        cluster.drain_worker(cluster.busiest_worker())
        cluster.start_worker()
    fault_end = cluster.timeline.mark("last drain")

    def handed_back_then_ran_again(f: Findings) -> list[str]:
        released = {
            tid: row
            for tid, row in f.rows.items()
            if any(a.outcome == "released" for a in row.history)
        }
        f.notes["handed_back"] = len(released)
        problems: list[str] = []
        if not released:
            # Either nothing was running past the grace (the scenario tested nothing) or the
            # hand-back is not in the history.
            interrupted = [
                tid for tid, starts in f.starts_by_task.items() if len({s.pid for s in starts}) > 1
            ]
            problems.append(
                f"no attempt is recorded as 'released' although {len(interrupted)} task(s) "
                "started on more than one worker"
            )
        not_rerun = [
            f.describe(tid)
            for tid, row in released.items()
            if not any(
                a.number > max(r.number for r in row.history if r.outcome == "released")
                and a.outcome != "running"
                for a in row.history
            )
        ]
        if not_rerun:
            problems.append(
                listing(
                    f"{len(not_rerun)} handed-back task(s) have no later, finished attempt in"
                    " their history",
                    not_rerun,
                )
            )
        unexplained = [
            f.describe(tid)
            for tid in f.reruns
            if not any(a.outcome in ("released", "lost") for a in f.rows[tid].history)
        ]
        if unexplained:
            problems.append(
                listing(
                    f"{len(unexplained)} task(s) ran again without a released or lost attempt",
                    unexplained,
                )
            )
        return problems

    chaos.finish(
        load,
        long,
        fault_end=fault_end,
        reruns_allowed=True,  # handed-back tasks run again; checked by the inspection
        inspect=handed_back_then_ran_again,
        notes={"drains": faults},
    )
