"""Retries that outlast a restart of the API server, within the retry budget and the deadline,
without ever creating a task twice; messages as large as the server allows. Every test runs
with both clients."""

from __future__ import annotations

import threading
import time

import grpc
import pytest

from taskflow_client import (
    DeadlineExceededError,
    ResourceExhaustedError,
    TaskRequest,
    TaskState,
    UnavailableError,
)
from taskflow_client._config import MAX_MESSAGE_BYTES
from taskflow_client._retry import DEFAULT_RETRY_BUDGET, RETRY_BUDGET_ENV
from taskflow_client.v1 import tasks_pb2 as pb

from .clients import MakeClient
from .fake_server import FakeServer

SLACK = 5.0
"""Seconds a bounded call may overrun its limit on a busy machine (the bound is what matters:
without it the call would go on for the default 30 s budget)."""


# -- settings ---------------------------------------------------------------------------------


def test_default_budget_outlasts_a_restart(
    make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(RETRY_BUDGET_ENV, raising=False)
    client = make_client("localhost:1")
    assert DEFAULT_RETRY_BUDGET >= 30
    assert client.retry_budget == DEFAULT_RETRY_BUDGET
    assert client.timeout is not None and client.timeout > client.retry_budget


def test_budget_from_the_environment_and_the_argument(
    make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(RETRY_BUDGET_ENV, "120")
    assert make_client("localhost:1").retry_budget == 120.0
    assert make_client("localhost:1", retry_budget=2).retry_budget == 2.0
    assert make_client("localhost:1", retry_budget=0).retry_budget == 0.0


@pytest.mark.parametrize("value", ["soon", "-1", "nan"])
def test_bad_budget_in_the_environment_names_the_variable(
    make_client: MakeClient, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv(RETRY_BUDGET_ENV, value)
    with pytest.raises(ValueError, match=f"{RETRY_BUDGET_ENV}: .*{value}"):
        make_client("localhost:1")


@pytest.mark.parametrize("value", [-0.5, float("nan"), True, "30"])
def test_bad_budget_argument_is_rejected(make_client: MakeClient, value: object) -> None:
    with pytest.raises(ValueError, match="retry_budget"):
        make_client("localhost:1", retry_budget=value)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"retries": 0}, "retries"),
        ({"retries": 2.5}, "retries"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": float("inf")}, "timeout"),
        ({"namespace": ""}, "namespace"),
    ],
)
def test_bad_settings_name_the_argument(
    make_client: MakeClient, kwargs: dict[str, object], name: str
) -> None:
    with pytest.raises(ValueError, match=f"^{name}: "):
        make_client("localhost:1", **kwargs)


# -- how long a call keeps retrying -----------------------------------------------------------


def test_retrying_lasts_the_budget_then_gives_up(fake: FakeServer, make_client: MakeClient) -> None:
    fake.service.fail_next("GetTask", grpc.StatusCode.UNAVAILABLE, "down", times=1000)
    client = make_client(fake.target, retry_budget=1.0, timeout=30)
    started = time.monotonic()
    with pytest.raises(UnavailableError, match="down") as caught:
        client.get("t-0001")
    assert 1.0 <= time.monotonic() - started < 1.0 + SLACK
    attempts = len(fake.service.calls_of("GetTask"))
    assert attempts > 3, "the call was not retried with backoff"
    assert f"gave up after {attempts} attempts" in caught.value.details


def test_zero_budget_makes_one_attempt(fake: FakeServer, make_client: MakeClient) -> None:
    fake.service.fail_next("GetQueueStats", grpc.StatusCode.UNAVAILABLE, "down", times=5)
    client = make_client(fake.target, retry_budget=0)
    with pytest.raises(UnavailableError) as caught:
        client.queue_stats("q")
    assert len(fake.service.calls_of("GetQueueStats")) == 1
    assert "gave up" not in caught.value.details


def test_retries_cap_the_attempts_within_the_budget(
    fake: FakeServer, make_client: MakeClient
) -> None:
    fake.service.fail_next("GetQueueStats", grpc.StatusCode.UNAVAILABLE, times=50)
    client = make_client(fake.target, retries=3, retry_budget=60)
    with pytest.raises(UnavailableError, match="gave up after 3 attempts"):
        client.queue_stats("q")
    assert len(fake.service.calls_of("GetQueueStats")) == 3


def test_a_final_answer_after_a_retry_is_not_reported_as_giving_up(
    fake: FakeServer, make_client: MakeClient
) -> None:
    fake.service.fail_next("GetTask", grpc.StatusCode.UNAVAILABLE)
    client = make_client(fake.target)
    with pytest.raises(Exception, match="not found") as caught:
        client.get("t-9999")
    assert "gave up" not in str(caught.value)
    assert len(fake.service.calls_of("GetTask")) == 2


def test_retrying_never_outlasts_the_deadline(fake: FakeServer, make_client: MakeClient) -> None:
    fake.service.fail_next("SubmitTask", grpc.StatusCode.UNAVAILABLE, times=1000)
    client = make_client(fake.target, timeout=1.0, retry_budget=60)
    started = time.monotonic()
    with pytest.raises(UnavailableError):
        client.submit("q", "h")
    assert time.monotonic() - started < 1.0 + SLACK
    calls = fake.service.calls_of("SubmitTask")
    assert len(calls) > 2
    remaining = [c.time_remaining for c in calls]
    # gRPC rounds the deadline it sends up to its next unit, hence the 0.1 s.
    assert all(r is not None and r <= 1.1 for r in remaining), remaining
    assert remaining == sorted(remaining, reverse=True), "each attempt gets what is left"


def test_a_slow_server_ends_the_call_at_its_deadline(
    fake: FakeServer, make_client: MakeClient
) -> None:
    task_id = make_client(fake.target).submit("q", "slow")
    fake.service.stall("GetTask", seconds=30)
    client = make_client(fake.target, timeout=0.5, retry_budget=60)
    started = time.monotonic()
    with pytest.raises(DeadlineExceededError):
        client.get(task_id)
    assert time.monotonic() - started < 0.5 + SLACK
    assert len(fake.service.calls_of("GetTask")) == 1


# -- repeats never duplicate ------------------------------------------------------------------


def test_submit_after_a_lost_reply_returns_the_task_created_first(
    fake: FakeServer, make_client: MakeClient
) -> None:
    client = make_client(fake.target)
    fake.service.lose_next_replies("SubmitTask", times=2)
    task_id = client.submit("q", "h", {"n": 1})
    assert len(fake.service.calls_of("SubmitTask")) == 3
    assert fake.service.count_tasks() == 1
    assert client.get(task_id).payload == {"n": 1}


def test_submit_many_after_a_lost_reply_creates_nothing_twice(
    fake: FakeServer, make_client: MakeClient
) -> None:
    client = make_client(fake.target)
    fake.service.lose_next_replies("SubmitTasks")
    items = [TaskRequest("q", "h", payload=i) for i in range(50)]
    items[7] = TaskRequest("q", "h", payload=7, idempotency_key="order-7")
    ids = client.submit_many(items)
    assert len(fake.service.calls_of("SubmitTasks")) == 2
    assert len(ids) == len(set(ids)) == 50
    assert fake.service.count_tasks() == 50
    assert [client.get(i).payload for i in ids] == list(range(50))


def test_cancel_after_a_lost_reply_returns_the_cancelled_task(
    fake: FakeServer, make_client: MakeClient
) -> None:
    client = make_client(fake.target)
    task_id = client.submit("q", "slow")
    fake.service.lose_next_replies("CancelTask")
    assert client.cancel(task_id).state is TaskState.CANCELLED


def test_a_restart_during_a_stream_of_submits_loses_and_duplicates_nothing(
    fake: FakeServer, make_client: MakeClient
) -> None:
    """The server is down for 3 s, twice as long as the old retry limit lasted."""
    client = make_client(fake.target, timeout=60)
    accepted: list[str] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def stream(worker: int) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            try:
                if n % 5 == 0:
                    batch = [TaskRequest("q", "h", payload=[worker, n, i]) for i in range(10)]
                    accepted.extend(client.submit_many(batch))
                else:
                    accepted.append(client.submit("q", "h", [worker, n]))
            except BaseException as exc:
                errors.append(exc)
                return

    threads = [threading.Thread(target=stream, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    try:
        _wait_for(lambda: len(accepted) >= 100, "the first 100 submissions")
        fake.stop()
        down_at = len(accepted)
        time.sleep(3.0)  # the outage being simulated
        fake.start()
        _wait_for(lambda: len(accepted) >= down_at + 200 or bool(errors), "submits after restart")
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=90)
    assert errors == []
    assert len(accepted) == len(set(accepted)) == fake.service.count_tasks()


def test_wait_rides_out_a_restart(fake: FakeServer, make_client: MakeClient) -> None:
    client = make_client(fake.target)
    task_id = client.submit("q", "slow")
    result: list[object] = []
    waiter = threading.Thread(target=lambda: result.append(client.wait(task_id, timeout=60)))
    waiter.start()
    fake.service.wait_for_calls("WatchTask", 1)
    fake.stop()
    time.sleep(3.0)  # the outage being simulated
    fake.start()
    fake.service.set_state(task_id, "succeeded", result="done")
    waiter.join(timeout=60)
    assert [getattr(t, "result", None) for t in result] == ["done"]


def test_wait_gives_up_after_the_budget_without_a_server(
    fake: FakeServer, make_client: MakeClient
) -> None:
    client = make_client(fake.target, retry_budget=1.0)
    task_id = client.submit("q", "slow")
    fake.stop()
    started = time.monotonic()
    with pytest.raises(UnavailableError):
        client.wait(task_id, timeout=60)
    assert 1.0 <= time.monotonic() - started < 1.0 + SLACK


# -- message size -----------------------------------------------------------------------------


def test_a_five_megabyte_result_is_readable(fake: FakeServer, make_client: MakeClient) -> None:
    client = make_client(fake.target)
    big = "x" * (5 * 1024 * 1024)
    task_id = client.submit("q", "echo", {"blob": big})
    assert client.get(task_id).result == {"blob": big}
    assert client.wait(task_id, timeout=30).result == {"blob": big}
    listed = list(client.list_tasks("q"))
    assert [t.payload for t in listed] == [{"blob": big}]


def test_a_message_over_the_limit_is_refused_once(
    fake: FakeServer, make_client: MakeClient
) -> None:
    client = make_client(fake.target)
    with pytest.raises(ResourceExhaustedError):
        client.submit("q", "h", "x" * MAX_MESSAGE_BYTES)
    assert len(fake.service.calls_of("SubmitTask")) == 0
    assert fake.service.count_tasks() == 0


def _wait_for(condition: object, what: str, deadline: float = 60.0) -> None:
    assert callable(condition)
    end = time.monotonic() + deadline
    while not condition():
        if time.monotonic() > end:
            pytest.fail(f"{what} did not happen within {deadline:g}s")
        time.sleep(0.01)


def test_every_call_carries_a_deadline(fake: FakeServer, make_client: MakeClient) -> None:
    client = make_client(fake.target, timeout=5)
    client.queues()
    (call,) = fake.service.calls_of("ListQueues")
    assert call.time_remaining is not None and 0 < call.time_remaining <= 5.1
    assert isinstance(call.request, pb.ListQueuesRequest)
