"""Submitting and reading tasks over gRPC, and how bad requests are answered."""

from __future__ import annotations

import json
from typing import Any

import grpc

from taskflow_client.v1 import tasks_pb2 as pb
from tests.api.conftest import MAX_PAYLOAD, QUEUE, later, rpc_error, spec, submit

PAYLOAD = {
    "to": "a@b.c",
    "count": 12345678901234567890,
    "ratio": 0.5,
    "nested": {"list": [1, None, {"deep": [True, False, None]}], "empty": {}},
    "none": None,
    "text": "héllo ✓",
}


async def test_submitted_task_reads_back_queued_with_its_exact_payload(grpc_stub: Any) -> None:
    response = await grpc_stub.SubmitTask(
        pb.SubmitTaskRequest(
            task=spec(
                "send_email",
                json.dumps(PAYLOAD),
                priority=5,
                max_retries=0,
                timeout_seconds=30,
                labels={"team": "mail"},
            )
        )
    )
    assert response.created

    task = await grpc_stub.GetTask(pb.GetTaskRequest(task_id=response.task_id))
    assert task.id == response.task_id
    assert (task.namespace, task.queue, task.handler) == ("default", QUEUE.name, "send_email")
    assert task.state == "queued"
    assert json.loads(task.payload_json) == PAYLOAD
    assert task.priority == 5
    assert task.max_retries == 0
    assert task.timeout_seconds == 30
    assert dict(task.labels) == {"team": "mail"}
    assert task.result_json == ""
    assert task.HasField("created_at") and not task.HasField("finished_at")


async def test_empty_payload_is_null_and_default_retries_apply(grpc_stub: Any) -> None:
    task_id = await submit(grpc_stub)
    task = await grpc_stub.GetTask(pb.GetTaskRequest(task_id=task_id))
    assert task.payload_json == ""
    assert task.max_retries == 3


async def test_delayed_task_is_scheduled(grpc_stub: Any) -> None:
    task_id = await submit(grpc_stub, delay_seconds=3600)
    task = await grpc_stub.GetTask(pb.GetTaskRequest(task_id=task_id))
    assert task.state == "scheduled"
    assert task.run_at.ToSeconds() - task.created_at.ToSeconds() >= 3599


async def test_batch_submit_returns_ids_in_order(grpc_stub: Any) -> None:
    response = await grpc_stub.SubmitTasks(
        pb.SubmitTasksRequest(tasks=[spec(payload_json=str(i)) for i in range(5)])
    )
    assert len(response.results) == 5
    for i, result in enumerate(response.results):
        task = await grpc_stub.GetTask(pb.GetTaskRequest(task_id=result.task_id))
        assert task.payload_json == str(i)


async def test_batch_with_one_bad_task_is_rejected_whole(grpc_stub: Any) -> None:
    tasks = [spec(), pb.TaskSpec(queue=QUEUE.name), spec()]
    err = await rpc_error(grpc_stub.SubmitTasks(pb.SubmitTasksRequest(tasks=tasks)))
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details.startswith("tasks[1].handler: ")

    listed = await grpc_stub.ListTasks(pb.ListTasksRequest())
    assert list(listed.tasks) == []


async def test_empty_batch_is_rejected(grpc_stub: Any) -> None:
    err = await rpc_error(grpc_stub.SubmitTasks(pb.SubmitTasksRequest()))
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details == "tasks: at least one task is required"


async def test_idempotent_resubmission_returns_the_original_task(grpc_stub: Any) -> None:
    request = pb.SubmitTaskRequest(task=spec(idempotency_key="order-42"))
    first = await grpc_stub.SubmitTask(request)
    second = await grpc_stub.SubmitTask(request)
    assert first.created and not second.created
    assert second.task_id == first.task_id
    listed = await grpc_stub.ListTasks(pb.ListTasksRequest(queue=QUEUE.name))
    assert [t.id for t in listed.tasks] == [first.task_id]


async def invalid(stub: Any, task: pb.TaskSpec) -> str:
    err = await rpc_error(stub.SubmitTask(pb.SubmitTaskRequest(task=task)))
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT, err.details
    return str(err.details)


async def test_missing_queue_is_named(grpc_stub: Any) -> None:
    details = await invalid(grpc_stub, pb.TaskSpec(handler="h"))
    assert details == "task.queue: Field required"


async def test_priority_out_of_range_is_named(grpc_stub: Any) -> None:
    details = await invalid(grpc_stub, spec(priority=1001))
    assert details == "task.priority: Input should be less than or equal to 1000"


async def test_invalid_json_payload_is_named(grpc_stub: Any) -> None:
    details = await invalid(grpc_stub, spec(payload_json="{not json"))
    assert details.startswith("task.payload_json: is not valid JSON: ")


async def test_payload_postgres_cannot_store_is_rejected(grpc_stub: Any) -> None:
    details = await invalid(grpc_stub, spec(payload_json='{"a": "nul \\u0000 here"}'))
    assert details.startswith("task.payload_json: ") and "NUL" in details
    details = await invalid(grpc_stub, spec(payload_json="[NaN]"))
    assert details.startswith("task.payload_json: is not valid JSON")


async def test_exclusive_fields_are_reported(grpc_stub: Any) -> None:
    task = spec(delay_seconds=5)
    task.run_at.GetCurrentTime()
    details = await invalid(grpc_stub, task)
    assert details == "task: delay_seconds and run_at are exclusive: give one of them"


async def test_oversized_payload_names_the_field_and_the_limit(grpc_stub: Any) -> None:
    payload = json.dumps({"blob": "x" * MAX_PAYLOAD})
    details = await invalid(grpc_stub, spec(payload_json=payload))
    assert details.startswith("task.payload_json: ")
    assert str(MAX_PAYLOAD) in details

    err = await rpc_error(
        grpc_stub.SubmitTasks(pb.SubmitTasksRequest(tasks=[spec(), spec(payload_json=payload)]))
    )
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details.startswith("tasks[1].payload_json: ")


async def test_enormous_message_is_refused_by_grpc(grpc_stub: Any) -> None:
    payload = json.dumps("x" * (MAX_PAYLOAD * 8 + 5 * 1024 * 1024))
    err = await rpc_error(
        grpc_stub.SubmitTask(pb.SubmitTaskRequest(task=spec(payload_json=payload)))
    )
    assert err.code == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_unknown_task_is_not_found(grpc_stub: Any) -> None:
    err = await rpc_error(
        grpc_stub.GetTask(pb.GetTaskRequest(task_id="0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"))
    )
    assert err.code == grpc.StatusCode.NOT_FOUND


async def test_malformed_task_id_is_invalid(grpc_stub: Any) -> None:
    err = await rpc_error(grpc_stub.GetTask(pb.GetTaskRequest(task_id="nope")))
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details.startswith("task_id: ")


async def test_run_at_in_the_future_schedules_the_task(grpc_stub: Any) -> None:
    task = spec()
    task.run_at.FromDatetime(later(3600))
    task_id = await submit_spec(grpc_stub, task)
    got = await grpc_stub.GetTask(pb.GetTaskRequest(task_id=task_id))
    assert got.state == "scheduled"
    assert got.run_at == task.run_at


async def submit_spec(stub: Any, task: pb.TaskSpec) -> str:
    return str((await stub.SubmitTask(pb.SubmitTaskRequest(task=task))).task_id)
