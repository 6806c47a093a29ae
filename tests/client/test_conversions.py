"""Conversions between the client's dataclasses and the protobuf messages."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from taskflow_client import (
    Attempt,
    InvalidArgumentError,
    RetryPolicy,
    TaskFlowError,
    TaskRequest,
    TaskState,
)
from taskflow_client._convert import (
    decode_json,
    queue_stats_from_proto,
    request_from_item,
    spec_from_request,
    task_from_proto,
)
from taskflow_client.v1 import tasks_pb2 as pb

T0 = datetime(2030, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)


def _ts(value: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(value)
    return ts


def test_task_from_proto_decodes_every_field() -> None:
    message = pb.Task(
        id="t-1",
        namespace="team-a",
        queue="emails",
        handler="send_email",
        state="failed",
        payload_json='{"to": "a@b.c", "n": [1, null]}',
        result_json="",
        error="boom",
        traceback="Traceback ...",
        priority=5,
        attempts=2,
        max_retries=1,
        timeout_seconds=30.0,
        idempotency_key="order-42",
        concurrency_key="",
        created_at=_ts(T0),
        started_at=_ts(T0 + timedelta(seconds=1)),
        finished_at=_ts(T0 + timedelta(seconds=2)),
        updated_at=_ts(T0 + timedelta(seconds=2)),
        progress=0.5,
        progress_message="half",
        attempt_history=[
            pb.Attempt(number=1, worker="w-1", outcome="failed", error="boom", started_at=_ts(T0)),
        ],
        labels={"team": "a"},
    )
    task = task_from_proto(message)
    assert task.id == "t-1"
    assert task.namespace == "team-a"
    assert task.state is TaskState.FAILED
    state: str = task.state
    assert state == "failed"
    assert task.done
    assert task.payload == {"to": "a@b.c", "n": [1, None]}
    assert task.result is None
    assert task.error == "boom"
    assert task.traceback == "Traceback ..."
    assert (task.priority, task.attempts, task.max_retries) == (5, 2, 1)
    assert task.timeout == 30.0
    assert task.idempotency_key == "order-42"
    assert task.concurrency_key is None
    assert task.created_at == T0
    assert task.created_at is not None and task.created_at.tzinfo is not None
    assert task.run_at is None
    assert task.finished_at == T0 + timedelta(seconds=2)
    assert task.progress == 0.5
    assert task.progress_message == "half"
    assert task.attempt_history == (
        Attempt(
            number=1, worker="w-1", started_at=T0, finished_at=None, outcome="failed", error="boom"
        ),
    )
    assert task.labels == {"team": "a"}


def test_empty_task_message_has_no_times_and_no_result() -> None:
    task = task_from_proto(pb.Task(id="t-2", state="queued"))
    assert not task.done
    assert task.payload is None and task.result is None and task.error is None
    assert task.timeout is None
    assert (task.created_at, task.started_at, task.finished_at, task.updated_at) == (None,) * 4
    assert task.attempt_history == ()


def test_unknown_state_is_a_clear_error() -> None:
    with pytest.raises(TaskFlowError, match="unknown task state 'paused'"):
        task_from_proto(pb.Task(id="t-3", state="paused"))


def test_result_that_is_not_json_is_kept_as_text() -> None:
    assert decode_json("not json") == "not json"
    assert decode_json("0") == 0
    assert decode_json("null") is None


def test_queue_stats_from_proto() -> None:
    stats = queue_stats_from_proto(
        pb.QueueStats(namespace="default", queue="q", ready=3, running=1, dead_letters=2)
    )
    assert (stats.queue, stats.ready, stats.running, stats.dead_letters) == ("q", 3, 1, 2)


def test_spec_from_request_sets_every_option() -> None:
    request = TaskRequest(
        queue="emails",
        handler="send_email",
        payload={"to": "ü@b.c", "big": 2**53 + 1},
        priority=7,
        run_at=T0.astimezone(timezone(timedelta(hours=2))),
        max_retries=0,
        timeout=timedelta(minutes=1),
        idempotency_key="k",
        concurrency_key="user-1",
        concurrency_limit=2,
        retry=RetryPolicy(initial_seconds=1.0, multiplier=3.0, max_seconds=60.0),
        labels={"team": "a"},
    )
    spec = spec_from_request(request, "team-a")
    assert spec.namespace == "team-a"
    assert spec.payload_json == '{"to":"ü@b.c","big":9007199254740993}'
    assert spec.priority == 7
    assert spec.run_at.ToDatetime(tzinfo=UTC) == T0
    assert spec.HasField("max_retries") and spec.max_retries == 0
    assert spec.timeout_seconds == 60.0
    assert (spec.idempotency_key, spec.concurrency_key, spec.concurrency_limit) == (
        "k",
        "user-1",
        2,
    )
    assert (spec.retry.initial_seconds, spec.retry.multiplier, spec.retry.max_seconds) == (
        1.0,
        3.0,
        60.0,
    )
    assert dict(spec.labels) == {"team": "a"}


def test_spec_defaults_leave_the_queue_in_charge() -> None:
    spec = spec_from_request(TaskRequest(queue="q", handler="h", namespace="other"), "default")
    assert spec.namespace == "other"
    assert spec.payload_json == ""
    assert not spec.HasField("max_retries")
    assert not spec.HasField("retry")
    assert not spec.HasField("run_at")
    assert spec.delay_seconds == 0.0


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (TaskRequest("q", "h", payload={"when": datetime.now(UTC)}), "payload"),
        (TaskRequest("q", "h", payload={"x": math.nan}), "payload"),
        (TaskRequest("q", "h", run_at=datetime(2030, 1, 1)), "run_at"),
        (TaskRequest("q", "h", delay=5, run_at=T0), "run_at"),
        (TaskRequest("q", "h", delay="5"), "delay"),  # type: ignore[arg-type]
        (TaskRequest("q", "h", labels={"n": 1}), "labels"),  # type: ignore[dict-item]
    ],
)
def test_values_that_cannot_be_sent_are_rejected(request_: TaskRequest, field: str) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        spec_from_request(request_, "default")
    assert caught.value.field == field


def test_prefix_names_the_item_of_a_batch() -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        spec_from_request(TaskRequest("q", "h", payload={1, 2}), "default", prefix="tasks[4].")
    assert caught.value.field == "tasks[4].payload"


def test_request_from_item_checks_the_keys() -> None:
    assert request_from_item({"queue": "q", "handler": "h", "priority": 3}, 0) == TaskRequest(
        "q", "h", priority=3
    )
    with pytest.raises(InvalidArgumentError) as caught:
        request_from_item({"queue": "q", "handler": "h", "prio": 3}, 2)
    assert caught.value.field == "tasks[2].prio"
    with pytest.raises(InvalidArgumentError) as caught:
        request_from_item({"queue": "q"}, 1)
    assert caught.value.field == "tasks[1].handler"
