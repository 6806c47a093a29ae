"""Every figure a user graphs moves with real work: submissions on the API server, outcomes,
durations and slots on the worker, lease expirations in housekeeping."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from taskflow.keys import QueueRef
from taskflow.worker_session import LeaseEvents, WorkerSession
from taskflow_client import AsyncClient, RetryPolicy
from tests.observability.conftest import QUEUE, Stack
from tests.observability.scrape import Samples, scrape, scrape_until

Q = {"namespace": "default", "queue": QUEUE}


def of(handler: str) -> dict[str, str]:
    return {**Q, "handler": handler}


async def test_counters_move_by_the_tasks_that_ran(stack: Stack) -> None:
    n = 7
    api0 = await scrape(stack.api_metrics)
    w0 = await scrape_until(stack.worker_metrics, lambda s: True)
    async with AsyncClient(stack.target) as client:
        ids = [await client.submit(QUEUE, "ok", {"i": i}) for i in range(n)]
        for task_id in ids:
            assert (await client.wait(task_id, timeout=30)).state == "succeeded"

    api = await scrape(stack.api_metrics)
    submitted = "taskflow_tasks_submitted_total"
    assert api(submitted, **of("ok")) - api0(submitted, **of("ok")) == n
    assert api("taskflow_queue_backlog", **Q) == 0
    assert api("taskflow_queue_stats_up") == 1

    def moved(name: str, by: int, handler: str = "ok") -> Callable[[Samples], bool]:
        return lambda s: s(name, **of(handler)) - w0(name, **of(handler)) >= by

    w = await scrape_until(stack.worker_metrics, moved("taskflow_tasks_succeeded_total", n))
    for name, by in (
        ("taskflow_tasks_started_total", n),
        ("taskflow_tasks_succeeded_total", n),
        ("taskflow_tasks_failed_total", 0),
        ("taskflow_tasks_dead_lettered_total", 0),
        ("taskflow_task_queue_wait_seconds_count", n),
    ):
        assert w(name, **of("ok")) - w0(name, **of("ok")) == by, name
    duration = "taskflow_task_duration_seconds_count"
    ran = {**of("ok"), "outcome": "succeeded"}
    assert w(duration, **ran) - w0(duration, **ran) == n
    lag = "taskflow_recorder_lag_seconds_count"
    assert w(lag) - w0(lag) >= n
    assert w("taskflow_worker_concurrency") == 4
    assert w("taskflow_worker_in_flight") == 0


async def test_failures_retries_and_dead_letters_are_counted(stack: Stack) -> None:
    w0 = await scrape_until(stack.worker_metrics, lambda s: True)
    fast = RetryPolicy(initial_seconds=0.01, multiplier=1.0, max_seconds=0.01)
    async with AsyncClient(stack.target) as client:
        retried = await client.submit(QUEUE, "boom", max_retries=2, retry=fast)
        permanent = await client.submit(QUEUE, "permanent", max_retries=5)
        assert (await client.wait(retried, timeout=30)).state == "failed"
        assert (await client.wait(permanent, timeout=30)).state == "failed"

    def delta(s: Samples, name: str, handler: str) -> float:
        return s(name, **of(handler)) - w0(name, **of(handler))

    w = await scrape_until(
        stack.worker_metrics,
        lambda s: (
            delta(s, "taskflow_tasks_dead_lettered_total", "boom") == 1
            and delta(s, "taskflow_tasks_dead_lettered_total", "permanent") == 1
        ),
    )
    # boom: three attempts fail, the first two are retried, the last is a dead letter
    assert delta(w, "taskflow_tasks_started_total", "boom") == 3
    assert delta(w, "taskflow_tasks_failed_total", "boom") == 3
    assert delta(w, "taskflow_tasks_retried_total", "boom") == 2
    assert delta(w, "taskflow_tasks_succeeded_total", "boom") == 0
    # a permanent error is a dead letter at once, whatever retries were left
    assert delta(w, "taskflow_tasks_failed_total", "permanent") == 1
    assert delta(w, "taskflow_tasks_retried_total", "permanent") == 0
    failed = {**of("boom"), "outcome": "failed"}
    duration = "taskflow_task_duration_seconds_count"
    assert w(duration, **failed) - w0(duration, **failed) == 3
    api = await scrape(stack.api_metrics)
    assert api("taskflow_queue_dead_letters", **Q) >= 2


async def test_an_abandoned_handler_holds_its_slot_until_it_returns(stack: Stack) -> None:
    async with AsyncClient(stack.target) as client:
        task_id = await client.submit(QUEUE, "stuck", 2.0, max_retries=0)
        assert (await client.wait(task_id, timeout=30)).state == "failed"  # timed out
        w = await scrape_until(stack.worker_metrics, lambda s: s("taskflow_worker_abandoned") == 1)
        assert w("taskflow_worker_in_flight") == 1
        timeout = {**of("stuck"), "outcome": "timeout"}
        assert w("taskflow_task_duration_seconds_count", **timeout) >= 1
        # once the handler returns, its slot is free again
        await scrape_until(
            stack.worker_metrics,
            lambda s: s("taskflow_worker_abandoned") == 0 and s("taskflow_worker_in_flight") == 0,
        )


async def test_housekeeping_counts_expired_leases(stack: Stack) -> None:
    """A worker that claims and vanishes: its lease expires and housekeeping ends it."""
    before = await scrape(stack.api_metrics)
    ref = QueueRef("default", "vanishing")
    settings = replace(stack.settings, lease_seconds=0.2)
    ignore = LeaseEvents(cancel=lambda _: None, lost=lambda _: None)
    async with AsyncClient(stack.target) as client:
        task_id = await client.submit(ref.name, "ok", max_retries=3)
        session = await WorkerSession.open(settings, "vanishing-worker", ignore)
        try:
            claimed, _ = await session.claim(ref, 1)
            assert [c.id for c in claimed] == [task_id]
            await session.flushed()
        finally:
            session.abandon(claimed[0])
            await session.close(1)
        name = "taskflow_lease_expirations_total"
        labels = {"namespace": "default", "queue": ref.name}
        after = await scrape_until(
            stack.api_metrics, lambda s: s(name, **labels) - before(name, **labels) == 1
        )
        assert after(name, **labels) - before(name, **labels) == 1
        task = await client.get(task_id)
        assert task.state == "queued", task  # it runs again; the lost lease is no failure
