"""Cancelling, listing, queue statistics and dead letters over gRPC."""

from __future__ import annotations

import json
from typing import Any

import grpc

from taskflow.models import TaskState
from taskflow_client.v1 import tasks_pb2 as pb
from tests.api.conftest import QUEUE, Dispatch, rpc_error, spec, submit


async def test_cancel_a_queued_task(grpc_stub: Any) -> None:
    task_id = await submit(grpc_stub)
    response = await grpc_stub.CancelTask(pb.CancelTaskRequest(task_id=task_id))
    assert response.task.id == task_id
    assert response.task.state == "cancelled"
    task = await grpc_stub.GetTask(pb.GetTaskRequest(task_id=task_id))
    assert task.state == "cancelled" and task.HasField("finished_at")


async def test_cancel_unknown_task_is_not_found(grpc_stub: Any) -> None:
    err = await rpc_error(
        grpc_stub.CancelTask(pb.CancelTaskRequest(task_id="0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"))
    )
    assert err.code == grpc.StatusCode.NOT_FOUND


async def test_list_filters_by_state_and_pages_through_everything(grpc_stub: Any) -> None:
    submitted = await grpc_stub.SubmitTasks(pb.SubmitTasksRequest(tasks=[spec()] * 7))
    ids = [r.task_id for r in submitted.results]
    cancelled = ids[:2]
    for task_id in cancelled:
        await grpc_stub.CancelTask(pb.CancelTaskRequest(task_id=task_id))

    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        page = await grpc_stub.ListTasks(
            pb.ListTasksRequest(queue=QUEUE.name, states=["queued"], page_size=2, page_token=token)
        )
        pages += 1
        assert len(page.tasks) <= 2
        assert {t.state for t in page.tasks} <= {"queued"}
        seen += [t.id for t in page.tasks]
        token = page.next_page_token
        if not token:
            break
    assert sorted(seen) == sorted(ids[2:])
    assert len(seen) == len(set(seen))
    assert pages == 3

    only_cancelled = await grpc_stub.ListTasks(pb.ListTasksRequest(states=["cancelled"]))
    assert sorted(t.id for t in only_cancelled.tasks) == sorted(cancelled)


async def test_list_rejects_unknown_state_and_bad_page_token(grpc_stub: Any) -> None:
    err = await rpc_error(grpc_stub.ListTasks(pb.ListTasksRequest(states=["queued", "done"])))
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details.startswith("states[1]: ")
    err = await rpc_error(grpc_stub.ListTasks(pb.ListTasksRequest(page_token="garbage")))
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details.startswith("page_token: ")


async def test_list_is_scoped_to_the_namespace(grpc_stub: Any) -> None:
    await submit(grpc_stub, namespace="team-a")
    await submit(grpc_stub)
    listed = await grpc_stub.ListTasks(pb.ListTasksRequest(namespace="team-a"))
    assert [t.namespace for t in listed.tasks] == ["team-a"]


async def test_queue_stats_count_ready_scheduled_running_and_finished(
    grpc_stub: Any, dispatch: Dispatch
) -> None:
    first = await submit(grpc_stub, priority=10)
    await submit(grpc_stub)
    await submit(grpc_stub)
    await submit(grpc_stub, delay_seconds=3600)
    await dispatch.start(first)

    stats = await grpc_stub.GetQueueStats(pb.GetQueueStatsRequest(queue=QUEUE.name))
    assert (stats.namespace, stats.queue) == ("default", QUEUE.name)
    assert (stats.ready, stats.scheduled, stats.running) == (2, 1, 1)

    await dispatch.finish(first, TaskState.SUCCEEDED, result={"ok": True})
    stats = await grpc_stub.GetQueueStats(pb.GetQueueStatsRequest(queue=QUEUE.name))
    assert (stats.ready, stats.running, stats.succeeded) == (2, 0, 1)

    queues = await grpc_stub.ListQueues(pb.ListQueuesRequest())
    assert [(q.namespace, q.queue, q.ready) for q in queues.queues] == [("default", "jobs", 2)]


async def test_queue_stats_need_a_queue(grpc_stub: Any) -> None:
    err = await rpc_error(grpc_stub.GetQueueStats(pb.GetQueueStatsRequest()))
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details == "queue: is required"


async def test_finished_task_shows_result_and_attempt_history(
    grpc_stub: Any, dispatch: Dispatch
) -> None:
    task_id = await submit(grpc_stub)
    await dispatch.start(task_id)
    await dispatch.finish(task_id, TaskState.SUCCEEDED, result={"sum": 5, "none": None})
    task = await grpc_stub.GetTask(pb.GetTaskRequest(task_id=task_id))
    assert task.state == "succeeded"
    assert json.loads(task.result_json) == {"sum": 5, "none": None}
    assert task.attempts == 1
    assert [(a.number, a.outcome, a.worker) for a in task.attempt_history] == [
        (1, "succeeded", "test-worker")
    ]
    assert task.attempt_history[0].HasField("finished_at")


async def test_dead_letters_are_listed_and_replayed(grpc_stub: Any, dispatch: Dispatch) -> None:
    ok = await submit(grpc_stub, max_retries=0)
    dead = await submit(grpc_stub, max_retries=0)
    await dispatch.start(ok)
    await dispatch.finish(ok, TaskState.SUCCEEDED)
    await dispatch.dead_letter(dead, error="boom")

    letters = await grpc_stub.ListDeadLetters(pb.ListDeadLettersRequest(queue=QUEUE.name))
    assert [(t.id, t.state, t.error) for t in letters.tasks] == [(dead, "failed", "boom")]
    stats = await grpc_stub.GetQueueStats(pb.GetQueueStatsRequest(queue=QUEUE.name))
    assert stats.dead_letters == 1

    replayed = await grpc_stub.ReplayDeadLetters(
        pb.ReplayDeadLettersRequest(queue=QUEUE.name, task_ids=[dead])
    )
    assert list(replayed.task_ids) == [dead]
    task = await grpc_stub.GetTask(pb.GetTaskRequest(task_id=dead))
    assert task.state == "queued"
    letters = await grpc_stub.ListDeadLetters(pb.ListDeadLettersRequest(queue=QUEUE.name))
    assert list(letters.tasks) == []
    # Dispatchable again: a worker can claim it.
    await dispatch.start(dead)


async def test_replay_names_a_malformed_id(grpc_stub: Any) -> None:
    err = await rpc_error(
        grpc_stub.ReplayDeadLetters(pb.ReplayDeadLettersRequest(queue=QUEUE.name, task_ids=["x"]))
    )
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details.startswith("task_ids[0]: ")
