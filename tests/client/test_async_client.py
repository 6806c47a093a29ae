"""AsyncClient: the same behaviour as Client, as coroutines."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import grpc
import pytest

from taskflow_client import (
    AsyncClient,
    DeadlineExceededError,
    InvalidArgumentError,
    NotFoundError,
    RetryPolicy,
    Task,
    TaskFlowTimeoutError,
    TaskRequest,
    TaskState,
    UnavailableError,
)
from taskflow_client.v1 import tasks_pb2 as pb

from .fake_server import FakeServer

RUN_AT = datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC)


async def _until_calls(fake: FakeServer, method: str, count: int) -> None:
    await asyncio.to_thread(fake.service.wait_for_calls, method, count)


async def test_submit_then_get_round_trips_every_option(aclient: AsyncClient) -> None:
    task_id = await aclient.submit(
        "emails",
        "send_email",
        {"to": "a@b.c"},
        priority=-3,
        run_at=RUN_AT,
        max_retries=0,
        timeout=12.5,
        concurrency_key="k",
        concurrency_limit=3,
        retry=RetryPolicy(initial_seconds=0.5, multiplier=2, max_seconds=8),
        labels={"a": "b"},
        namespace="team-a",
    )
    task = await aclient.get(task_id)
    assert (task.namespace, task.queue, task.handler) == ("team-a", "emails", "send_email")
    assert task.state is TaskState.SCHEDULED
    assert task.payload == {"to": "a@b.c"}
    assert (task.priority, task.max_retries, task.timeout) == (-3, 0, 12.5)
    assert task.run_at == RUN_AT
    assert task.concurrency_key == "k"
    assert task.labels == {"a": "b"}


async def test_payload_that_is_not_json_fails_before_any_call(
    fake: FakeServer, aclient: AsyncClient
) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        await aclient.submit("q", "h", object())
    assert caught.value.field == "payload"
    assert fake.service.calls == []


async def test_submit_is_retried_with_one_generated_idempotency_key(
    fake: FakeServer, aclient: AsyncClient
) -> None:
    fake.service.fail_next("SubmitTask", grpc.StatusCode.UNAVAILABLE, times=2)
    task_id = await aclient.submit("q", "h")
    keys = []
    for call in fake.service.calls_of("SubmitTask"):
        assert isinstance(call.request, pb.SubmitTaskRequest)
        keys.append(call.request.task.idempotency_key)
    assert len(keys) == 3 and keys[0] and len(set(keys)) == 1
    assert (await aclient.get(task_id)).idempotency_key == keys[0]


async def test_submit_many_keeps_given_keys_and_generates_the_others(
    fake: FakeServer, aclient: AsyncClient
) -> None:
    ids = await aclient.submit_many(
        [TaskRequest("q", "echo", idempotency_key="mine"), {"queue": "q", "handler": "echo"}]
    )
    assert len(ids) == 2
    (call,) = fake.service.calls_of("SubmitTasks")
    assert isinstance(call.request, pb.SubmitTasksRequest)
    keys = [spec.idempotency_key for spec in call.request.tasks]
    assert keys[0] == "mine" and keys[1] and keys[1] != "mine"


async def test_retries_give_up_with_unavailable(fake: FakeServer) -> None:
    fake.service.fail_next("GetQueueStats", grpc.StatusCode.UNAVAILABLE, times=10)
    async with AsyncClient(fake.target, retries=3) as client:
        with pytest.raises(UnavailableError):
            await client.queue_stats("q")
    assert len(fake.service.calls_of("GetQueueStats")) == 3


async def test_writes_are_not_retried_after_a_missed_deadline(
    fake: FakeServer, aclient: AsyncClient
) -> None:
    fake.service.fail_next("SubmitTask", grpc.StatusCode.DEADLINE_EXCEEDED)
    with pytest.raises(DeadlineExceededError):
        await aclient.submit("q", "h")
    assert len(fake.service.calls_of("SubmitTask")) == 1


async def test_wait_returns_the_terminal_task_from_the_stream(
    fake: FakeServer, aclient: AsyncClient
) -> None:
    task = await aclient.wait(await aclient.submit("q", "echo", [1]), timeout=10)
    assert (task.state, task.result) == (TaskState.SUCCEEDED, [1])
    assert fake.service.calls_of("GetTask") == []


async def test_wait_follows_state_changes(fake: FakeServer, aclient: AsyncClient) -> None:
    task_id = await aclient.submit("q", "slow")
    waiting = asyncio.create_task(aclient.wait(task_id, timeout=10))
    await _until_calls(fake, "WatchTask", 1)
    fake.service.set_state(task_id, "running")
    fake.service.set_state(task_id, "cancelled")
    task = await asyncio.wait_for(waiting, timeout=10)
    assert task.state is TaskState.CANCELLED


async def test_wait_times_out(aclient: AsyncClient) -> None:
    task_id = await aclient.submit("q", "slow")
    with pytest.raises(TaskFlowTimeoutError, match=task_id):
        await aclient.wait(task_id, timeout=0.3)


async def test_wait_reconnects_when_the_server_is_unavailable(
    fake: FakeServer, aclient: AsyncClient
) -> None:
    fake.service.fail_next("WatchTask", grpc.StatusCode.UNAVAILABLE, times=2)
    task = await aclient.wait(await aclient.submit("q", "echo", "hi"), timeout=10)
    assert task.result == "hi"
    assert len(fake.service.calls_of("WatchTask")) == 3


async def test_wait_reconnects_after_a_dropped_stream(
    fake: FakeServer, aclient: AsyncClient
) -> None:
    task_id = await aclient.submit("q", "slow")
    fake.service.drop_watches_after_first_snapshot(1)
    waiting = asyncio.create_task(aclient.wait(task_id, timeout=10))
    await _until_calls(fake, "WatchTask", 2)
    fake.service.set_state(task_id, "succeeded", result=7)
    task = await asyncio.wait_for(waiting, timeout=10)
    assert task.result == 7


async def test_wait_on_a_missing_task_is_not_found(aclient: AsyncClient) -> None:
    with pytest.raises(NotFoundError):
        await aclient.wait("t-9999", timeout=5)


async def test_watch_yields_each_snapshot_until_terminal(
    fake: FakeServer, aclient: AsyncClient
) -> None:
    task_id = await aclient.submit("q", "slow")
    states = []
    async for snapshot in aclient.watch(task_id):
        states.append(snapshot.state)
        if snapshot.state == "queued":
            fake.service.set_state(task_id, "running")
        elif snapshot.state == "running":
            fake.service.set_state(task_id, "succeeded")
    assert states == ["queued", "running", "succeeded"]


async def test_token_is_sent_as_bearer_metadata(fake: FakeServer) -> None:
    async with AsyncClient(fake.target, token="s3cret") as client:
        await client.wait(await client.submit("q", "echo"), timeout=10)
    assert {c.header("authorization") for c in fake.service.calls} == {"Bearer s3cret"}


async def test_address_and_token_default_to_the_environment(
    fake: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TASKFLOW_API_ADDR", fake.target)
    monkeypatch.setenv("TASKFLOW_API_TOKEN", "from-env")
    async with AsyncClient() as client:
        await client.queues()
    assert fake.service.calls[0].header("authorization") == "Bearer from-env"


async def test_cancel_list_stats_dead_letters_replay(aclient: AsyncClient) -> None:
    slow = await aclient.submit("q", "slow", delay=timedelta(minutes=5))
    cancelled = await aclient.cancel(slow)
    assert cancelled.state is TaskState.CANCELLED
    failed = await aclient.submit_many([{"queue": "q", "handler": "fail"} for _ in range(3)])
    listed: list[Task] = [t async for t in aclient.list_tasks("q", page_size=2)]
    assert [t.id for t in listed] == [slow, *failed]
    tasks, token = await aclient.list_tasks_page("q", states=["failed"], page_size=2)
    assert [t.id for t in tasks] == failed[:2] and token is not None
    stats = await aclient.queue_stats("q")
    assert (stats.cancelled, stats.failed) == (1, 3)
    assert [q.queue for q in await aclient.queues()] == ["q"]
    assert [t.id for t in await aclient.dead_letters("q", page_size=2)] == failed
    assert await aclient.replay("q") == failed
    assert await aclient.dead_letters("q") == []


async def test_close_is_idempotent_and_before_first_call(fake: FakeServer) -> None:
    client = AsyncClient(fake.target)
    await client.close()
    async with AsyncClient(fake.target) as client:
        await client.queues()
    await client.close()
