"""Redis lost, frozen, or failing under the workers while the stream runs."""

from __future__ import annotations

import time

import pytest

from tests.chaos.checks import Findings
from tests.chaos.proxy import ends_attempt
from tests.chaos.scenario import Scenario

pytestmark = pytest.mark.chaos

LEASE = 2.0  # short, so a freeze outlasts it quickly


def test_redis_restarted_empty(chaos: Scenario) -> None:
    """SIGKILL Redis and start it again without its data: housekeeping rebuilds the dispatch
    index from PostgreSQL and every accepted task finishes, recorded once."""
    cluster = chaos.start(lease_seconds=5.0)
    load = chaos.stream(chaos.mixed_plans())
    restarts = max(1, chaos.scale.faults // 3)
    for _ in chaos.spread(load, restarts):
        cluster.redis.kill()
        cluster.timeline.mark("redis SIGKILLed")
        time.sleep(1.0)  # the outage itself
        cluster.redis.restart_empty()
    fault_end = cluster.timeline.mark("redis started again, empty")
    chaos.finish(
        load,
        fault_end=fault_end,
        reruns_allowed=True,  # tasks running when Redis forgot them are dispatched again
        notes={"redis_restarts": restarts},
    )


def test_redis_paused_past_lease(chaos: Scenario) -> None:
    """SIGSTOP Redis for longer than the lease, then SIGCONT: leases expired meanwhile, so some
    tasks run again, but every completion is recorded once and nothing is lost."""
    cluster = chaos.start(lease_seconds=LEASE)
    load = chaos.stream(chaos.mixed_plans())
    chaos.when_accepted(load, 0.4)
    cluster.redis.pause()
    cluster.timeline.mark("redis SIGSTOPped")
    time.sleep(LEASE + 2)  # the freeze itself: past every lease
    cluster.redis.resume()
    fault_end = cluster.timeline.mark("redis SIGCONTed")
    chaos.finish(load, fault_end=fault_end, reruns_allowed=True, notes={"paused_s": LEASE + 2})


def test_workers_cut_off_from_redis_past_lease(chaos: Scenario) -> None:
    """Hold every byte between the workers and Redis for longer than the lease while the API
    and housekeeping still reach it: the workers look dead, their leases are reclaimed; when
    the link comes back, their late completions must not be recorded a second time."""
    cluster = chaos.start(lease_seconds=LEASE, workers_via_proxy=True)
    proxy = cluster.proxy
    assert proxy is not None
    load = chaos.stream(chaos.mixed_plans())
    chaos.when_accepted(load, 0.4)
    proxy.pause()
    cluster.timeline.mark("workers cut off from redis")
    time.sleep(LEASE * 2 + 1)  # the partition itself: the sweep reclaims every lease
    proxy.resume()
    fault_end = cluster.timeline.mark("link restored")
    chaos.finish(load, fault_end=fault_end, reruns_allowed=True, notes={"cut_off_s": LEASE * 2 + 1})


def test_redis_errors_in_ack_and_retry(chaos: Scenario) -> None:
    """Connection failures exactly when workers end attempts (ack, retry): half the calls never
    reach Redis, half run but their reply is lost; then Redis refuses the workers for a
    moment. No worker died and no lease ran out, so nothing may run twice or wait for a lease
    to expire: every outcome is retried until it is recorded."""
    window = 3.0
    cluster = chaos.start(lease_seconds=10.0, workers_via_proxy=True)
    proxy = cluster.proxy
    assert proxy is not None
    load = chaos.stream(chaos.mixed_plans())
    chaos.when_accepted(load, 0.2)
    proxy.fail_commands(ends_attempt, seconds=window)
    cluster.timeline.mark(f"acks and retries failing for {window:.0f}s")
    time.sleep(window)  # the fault window itself
    chaos.when_accepted(load, 0.6)
    proxy.refuse(1.0)
    cluster.timeline.mark("redis refusing the workers for 1s")
    time.sleep(1.0)
    fault_end = cluster.timeline.mark("faults over")

    def faults_were_injected(f: Findings) -> list[str]:
        f.notes.update(dict(proxy.stats))
        if not proxy.stats["dropped"] or not proxy.stats["reply_lost"]:
            return [
                "the proxy saw no ack or retry to fail (dropped "
                f"{proxy.stats['dropped']}, replies lost {proxy.stats['reply_lost']}): the "
                "commands that end an attempt no longer carry an outcome word "
                "(tests.chaos.proxy.ends_attempt), so this scenario tested nothing"
            ]
        return []

    chaos.finish(load, fault_end=fault_end, inspect=faults_were_injected)
