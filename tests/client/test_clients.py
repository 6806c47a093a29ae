"""Both clients against the in-process fake server: every test runs once with ``Client`` and
once with ``AsyncClient`` (through ``BlockingAsyncClient``), so their behaviour stays the same."""

from __future__ import annotations

import queue
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import grpc
import pytest

from taskflow_client import (
    Client,
    DeadlineExceededError,
    InvalidArgumentError,
    RetryPolicy,
    Task,
    TaskFlowError,
    TaskFlowTimeoutError,
    TaskRequest,
    TaskState,
    UnavailableError,
)
from taskflow_client.v1 import tasks_pb2 as pb

from .clients import AnyClient, MakeClient
from .fake_server import FakeServer

RUN_AT = datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC)


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=2) as executor:
        yield executor


def _submitted_specs(fake: FakeServer) -> list[pb.TaskSpec]:
    specs = []
    for call in fake.service.calls_of("SubmitTask"):
        assert isinstance(call.request, pb.SubmitTaskRequest)
        specs.append(call.request.task)
    return specs


# -- submit and get ---------------------------------------------------------------------------


def test_submit_then_get_round_trips_every_option(client: AnyClient) -> None:
    task_id = client.submit(
        "emails",
        "send_email",
        {"to": "a@b.c", "n": [1, 2.5, None, True]},
        priority=5,
        run_at=RUN_AT,
        max_retries=2,
        timeout=timedelta(seconds=45),
        idempotency_key="order-42",
        concurrency_key="user-7",
        concurrency_limit=1,
        retry=RetryPolicy(initial_seconds=1, multiplier=2, max_seconds=30),
        labels={"team": "growth"},
    )
    task = client.get(task_id)
    assert task.id == task_id
    assert (task.namespace, task.queue, task.handler) == ("default", "emails", "send_email")
    assert task.state is TaskState.SCHEDULED
    assert not task.done
    assert task.payload == {"to": "a@b.c", "n": [1, 2.5, None, True]}
    assert task.priority == 5
    assert task.run_at == RUN_AT
    assert task.max_retries == 2
    assert task.timeout == 45.0
    assert task.idempotency_key == "order-42"
    assert task.concurrency_key == "user-7"
    assert task.labels == {"team": "growth"}
    assert task.created_at is not None and task.created_at.tzinfo is not None


def test_finished_task_has_result_and_attempts(client: AnyClient) -> None:
    task = client.get(client.submit("q", "echo", {"x": 1}))
    assert task.state == "succeeded" and task.done
    assert task.result == {"x": 1}
    assert task.attempts == 1
    assert [a.outcome for a in task.attempt_history] == ["succeeded"]
    failed = client.get(client.submit("q", "fail"))
    assert (failed.state, failed.error) == (TaskState.FAILED, "boom")
    assert failed.traceback is not None and "RuntimeError" in failed.traceback


def test_delay_is_sent_in_seconds(fake: FakeServer, client: AnyClient) -> None:
    client.submit("q", "h", delay=timedelta(milliseconds=1500))
    client.submit("q", "h", delay=2)
    assert [s.delay_seconds for s in _submitted_specs(fake)] == [1.5, 2.0]


def test_namespace_of_client_and_of_call(fake: FakeServer, make_client: MakeClient) -> None:
    with make_client(fake.target, namespace="team-a") as client:
        first = client.get(client.submit("q", "h"))
        second = client.get(client.submit("q", "h", namespace="team-b"))
    assert (first.namespace, second.namespace) == ("team-a", "team-b")


def test_payload_that_is_not_json_fails_before_any_call(
    fake: FakeServer, client: AnyClient
) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        client.submit("q", "h", {"when": datetime.now(UTC)})
    assert caught.value.field == "payload"
    assert fake.service.calls == []


# -- retries and idempotency --------------------------------------------------------------------


def test_submit_is_retried_with_one_generated_idempotency_key(
    fake: FakeServer, client: AnyClient
) -> None:
    fake.service.fail_next("SubmitTask", grpc.StatusCode.UNAVAILABLE, times=2)
    task_id = client.submit("q", "h", {"n": 1})
    keys = [spec.idempotency_key for spec in _submitted_specs(fake)]
    assert len(keys) == 3
    assert keys[0] and len(set(keys)) == 1
    assert [t.id for t in client.list_tasks("q")] == [task_id]
    assert client.get(task_id).idempotency_key == keys[0]


def test_each_submit_gets_its_own_generated_key(fake: FakeServer, client: AnyClient) -> None:
    first, second = client.submit("q", "h"), client.submit("q", "h")
    assert first != second
    keys = [spec.idempotency_key for spec in _submitted_specs(fake)]
    assert len(set(keys)) == 2


def test_given_idempotency_key_returns_the_existing_task(
    fake: FakeServer, client: AnyClient
) -> None:
    first = client.submit("q", "h", idempotency_key="order-42")
    assert client.submit("q", "h", idempotency_key="order-42") == first
    assert {spec.idempotency_key for spec in _submitted_specs(fake)} == {"order-42"}


def test_retries_give_up_with_unavailable(fake: FakeServer, make_client: MakeClient) -> None:
    fake.service.fail_next("GetTask", grpc.StatusCode.UNAVAILABLE, "down", times=10)
    with (
        make_client(fake.target, retries=3) as client,
        pytest.raises(UnavailableError, match="down"),
    ):
        client.get("t-0001")
    assert len(fake.service.calls_of("GetTask")) == 3


def test_unreachable_server_is_unavailable(make_client: MakeClient) -> None:
    with make_client("127.0.0.1:1", retries=2) as client, pytest.raises(UnavailableError):
        client.get("t-0001")


def test_reads_are_retried_after_a_missed_deadline(fake: FakeServer, client: AnyClient) -> None:
    task_id = client.submit("q", "h")
    fake.service.fail_next("GetTask", grpc.StatusCode.DEADLINE_EXCEEDED)
    assert client.get(task_id).id == task_id
    assert len(fake.service.calls_of("GetTask")) == 2


def test_writes_are_not_retried_after_a_missed_deadline(
    fake: FakeServer, client: AnyClient
) -> None:
    fake.service.fail_next("CancelTask", grpc.StatusCode.DEADLINE_EXCEEDED)
    with pytest.raises(DeadlineExceededError):
        client.cancel("t-0001")
    assert len(fake.service.calls_of("CancelTask")) == 1


def test_submit_many_is_one_call_with_a_key_per_item(fake: FakeServer, client: AnyClient) -> None:
    fake.service.fail_next("SubmitTasks", grpc.StatusCode.UNAVAILABLE)
    ids = client.submit_many(
        [
            {"queue": "q", "handler": "echo", "payload": 1},
            TaskRequest("q", "echo", payload=2, idempotency_key="mine"),
            {"queue": "other", "handler": "h", "priority": 9},
        ]
    )
    assert len(ids) == 3 and len(set(ids)) == 3
    calls = fake.service.calls_of("SubmitTasks")
    assert len(calls) == 2
    key_lists = []
    for call in calls:
        assert isinstance(call.request, pb.SubmitTasksRequest)
        key_lists.append([spec.idempotency_key for spec in call.request.tasks])
    assert key_lists[0] == key_lists[1]
    assert key_lists[0][1] == "mine"
    assert all(key_lists[0]) and len(set(key_lists[0])) == 3
    assert [client.get(i).result for i in ids[:2]] == [1, 2]
    assert client.get(ids[2]).priority == 9


def test_submit_many_of_nothing_makes_no_call(fake: FakeServer, client: AnyClient) -> None:
    assert client.submit_many([]) == []
    assert fake.service.calls == []


# -- wait and watch ---------------------------------------------------------------------------


def test_wait_returns_the_terminal_task_from_the_stream(
    fake: FakeServer, client: AnyClient
) -> None:
    task = client.wait(client.submit("q", "echo", {"v": 3}), timeout=10)
    assert task.state == "succeeded"
    assert task.result == {"v": 3}
    assert fake.service.calls_of("GetTask") == []


def test_wait_follows_state_changes(
    fake: FakeServer, client: AnyClient, pool: ThreadPoolExecutor
) -> None:
    task_id = client.submit("q", "slow")
    waiting: Future[Task] = pool.submit(client.wait, task_id, 10)
    fake.service.wait_for_calls("WatchTask", 1)
    fake.service.set_state(task_id, "running")
    fake.service.set_state(task_id, "succeeded", result={"ok": True})
    task = waiting.result(timeout=10)
    assert (task.state, task.result) == (TaskState.SUCCEEDED, {"ok": True})


def test_wait_times_out(client: AnyClient) -> None:
    task_id = client.submit("q", "slow")
    with pytest.raises(TaskFlowTimeoutError, match=task_id) as caught:
        client.wait(task_id, timeout=0.3)
    assert isinstance(caught.value, TimeoutError)


def test_wait_reconnects_when_the_server_is_unavailable(
    fake: FakeServer, client: AnyClient
) -> None:
    fake.service.fail_next("WatchTask", grpc.StatusCode.UNAVAILABLE, times=2)
    task = client.wait(client.submit("q", "echo", "hi"), timeout=10)
    assert task.result == "hi"
    assert len(fake.service.calls_of("WatchTask")) == 3


def test_wait_reconnects_after_a_dropped_stream(
    fake: FakeServer, client: AnyClient, pool: ThreadPoolExecutor
) -> None:
    task_id = client.submit("q", "slow")
    fake.service.drop_watches_after_first_snapshot(1)
    waiting: Future[Task] = pool.submit(client.wait, task_id, 10)
    fake.service.wait_for_calls("WatchTask", 2)
    fake.service.set_state(task_id, "failed", error="bad input")
    task = waiting.result(timeout=10)
    assert (task.state, task.error) == (TaskState.FAILED, "bad input")


def test_wait_gives_up_when_the_server_stays_unavailable(
    fake: FakeServer, make_client: MakeClient
) -> None:
    fake.service.fail_next("WatchTask", grpc.StatusCode.UNAVAILABLE, "down", times=10)
    with make_client(fake.target, retries=2) as client, pytest.raises(UnavailableError):
        client.wait("t-0001", timeout=10)
    assert len(fake.service.calls_of("WatchTask")) == 2


def test_wait_on_a_missing_task_is_not_found(client: AnyClient) -> None:
    from taskflow_client import NotFoundError

    with pytest.raises(NotFoundError):
        client.wait("t-9999", timeout=5)


def test_watch_yields_each_snapshot_until_terminal(
    fake: FakeServer, client: AnyClient, pool: ThreadPoolExecutor
) -> None:
    task_id = client.submit("q", "slow")
    seen: queue.Queue[Task] = queue.Queue()

    def consume() -> None:
        for snapshot in client.watch(task_id):
            seen.put(snapshot)

    consumer = pool.submit(consume)
    assert seen.get(timeout=10).state == "queued"
    fake.service.set_state(task_id, "running")
    assert seen.get(timeout=10).state == "running"
    fake.service.set_state(task_id, "succeeded", result=[1, 2])
    last = seen.get(timeout=10)
    assert (last.state, last.result) == ("succeeded", [1, 2])
    consumer.result(timeout=10)
    assert seen.empty()


# -- metadata and configuration -----------------------------------------------------------------


def test_token_is_sent_as_bearer_metadata(fake: FakeServer, make_client: MakeClient) -> None:
    with make_client(fake.target, token="s3cret") as client:
        client.wait(client.submit("q", "echo"), timeout=10)
    headers = {c.method: c.header("authorization") for c in fake.service.calls}
    assert headers == {"SubmitTask": "Bearer s3cret", "WatchTask": "Bearer s3cret"}


def test_no_token_sends_no_authorization(fake: FakeServer, client: AnyClient) -> None:
    client.queues()
    assert fake.service.calls[0].header("authorization") is None


def test_address_and_token_default_to_the_environment(
    fake: FakeServer, monkeypatch: pytest.MonkeyPatch, make_client: MakeClient
) -> None:
    monkeypatch.setenv("TASKFLOW_API_ADDR", fake.target)
    monkeypatch.setenv("TASKFLOW_API_TOKEN", "from-env")
    with make_client() as client:
        assert client.target == fake.target
        client.queue_stats("q")
    assert fake.service.calls[0].header("authorization") == "Bearer from-env"
    assert (fake.service.calls[0].header("user-agent") or "").startswith("taskflow-client/")


def test_default_address(monkeypatch: pytest.MonkeyPatch, make_client: MakeClient) -> None:
    monkeypatch.delenv("TASKFLOW_API_ADDR", raising=False)
    with make_client() as client:
        assert client.target == "localhost:50051"
        assert client.namespace == "default"


def test_bad_settings_are_rejected() -> None:
    with pytest.raises(ValueError, match="retries"):
        Client("localhost:1", retries=0)
    with pytest.raises(ValueError, match="timeout"):
        Client("localhost:1", timeout=0)


# -- cancel, listing, queues, dead letters ------------------------------------------------------


def test_cancel_returns_the_cancelled_task(client: AnyClient) -> None:
    task = client.cancel(client.submit("q", "slow"))
    assert task.state is TaskState.CANCELLED and task.done


def test_list_tasks_walks_every_page(fake: FakeServer, client: AnyClient) -> None:
    ids = client.submit_many([{"queue": "q", "handler": "slow"} for _ in range(5)])
    client.submit("other", "slow")
    assert [t.id for t in client.list_tasks("q", page_size=2)] == ids
    assert len(fake.service.calls_of("ListTasks")) == 3
    assert len(list(client.list_tasks())) == 6


def test_list_tasks_page_and_state_filter(client: AnyClient) -> None:
    done = client.submit("q", "echo")
    client.submit("q", "slow")
    tasks, token = client.list_tasks_page("q", states=[TaskState.SUCCEEDED])
    assert ([t.id for t in tasks], token) == ([done], None)
    tasks, token = client.list_tasks_page("q", states=["queued", "succeeded"], page_size=1)
    assert len(tasks) == 1 and token is not None
    with pytest.raises(InvalidArgumentError) as caught:
        client.list_tasks_page("q", states=["finished"])
    assert caught.value.field == "states"


def test_queue_stats_and_queues(client: AnyClient) -> None:
    client.submit_many(
        [
            {"queue": "emails", "handler": "slow"},
            {"queue": "emails", "handler": "echo"},
            {"queue": "emails", "handler": "fail"},
            {"queue": "reports", "handler": "slow", "delay": 60},
        ]
    )
    stats = client.queue_stats("emails")
    assert (stats.ready, stats.succeeded, stats.failed, stats.dead_letters) == (1, 1, 1, 1)
    assert [(q.queue, q.scheduled) for q in client.queues()] == [("emails", 0), ("reports", 1)]


def test_dead_letters_and_replay(client: AnyClient) -> None:
    failed = client.submit_many([{"queue": "q", "handler": "fail"} for _ in range(3)])
    assert [t.id for t in client.dead_letters("q", page_size=2)] == failed
    assert [t.id for t in client.dead_letters("q", limit=1)] == failed[:1]
    assert client.replay("q", [failed[0]]) == [failed[0]]
    assert client.get(failed[0]).state == "queued"
    assert client.replay("q") == failed[1:]
    assert client.dead_letters("q") == []


def test_a_closed_client_refuses_calls(fake: FakeServer, make_client: MakeClient) -> None:
    client = make_client(fake.target)
    client.queues()
    client.close()
    with pytest.raises(TaskFlowError, match="is closed"):
        client.get("t-0001")
    assert len(fake.service.calls) == 1
    client.close()


def test_calls_cancelled_by_a_stopping_server_are_repeated(
    fake: FakeServer, client: AnyClient
) -> None:
    fake.service.fail_next("SubmitTask", grpc.StatusCode.CANCELLED)
    fake.service.fail_next("GetTask", grpc.StatusCode.CANCELLED)
    fake.service.fail_next("WatchTask", grpc.StatusCode.CANCELLED)
    task_id = client.submit("q", "echo", 1)
    assert client.get(task_id).id == task_id
    assert client.wait(task_id, timeout=10).result == 1
    assert [len(fake.service.calls_of(m)) for m in ("SubmitTask", "GetTask", "WatchTask")] == [
        2,
        2,
        2,
    ]
    assert fake.service.count_tasks() == 1
