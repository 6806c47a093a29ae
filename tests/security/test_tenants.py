"""Tenant isolation: a token scoped to one namespace cannot see or touch another's objects.

Every RPC is called with a foreign token (admin of ``team-b``) on ``team-a``'s objects: calls
by id answer NOT_FOUND exactly as for an id that does not exist; calls naming the namespace
answer PERMISSION_DENIED; listings across namespaces leave the foreign objects out.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import aiohttp
import grpc
import pytest
from grpc import aio

from taskflow.api import ApiServer
from taskflow_client import AsyncClient, ResourceExhaustedError, TaskRequest
from taskflow_client.v1 import tasks_pb2 as pb
from tests.security.conftest import (
    ADMIN,
    METRICS,
    READER_A,
    SLOW,
    TEAM_A,
    TEAM_B,
    TOKENS,
    TokensFile,
    auth,
)

A = "team-a"


def task_spec(namespace: str = A, handler: str = "work") -> pb.TaskSpec:
    return pb.TaskSpec(namespace=namespace, queue="jobs", handler=handler, payload_json="{}")


def dag_spec(namespace: str = A) -> pb.DagSpec:
    step = pb.DagStep(name="a", task=pb.TaskSpec(handler="h"))
    return pb.DagSpec(namespace=namespace, queue="etl", steps=[step])


def schedule_spec(namespace: str = A) -> pb.ScheduleSpec:
    return pb.ScheduleSpec(
        namespace=namespace, name="nightly", cron="0 3 * * *", task=task_spec(namespace)
    )


@dataclass
class World:
    """Objects of team-a, made with team-a's token."""

    task_id: str
    run_id: str


async def failure(call: Any) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(aio.AioRpcError) as info:
        await call
    return info.value.code(), info.value.details() or ""


async def stream_failure(stream: Any) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(aio.AioRpcError) as info:
        async for _ in stream:
            pass
    return info.value.code(), info.value.details() or ""


@pytest.fixture
async def world(secure_stub: Any) -> World:
    md = auth(TEAM_A)
    task = await secure_stub.SubmitTask(pb.SubmitTaskRequest(task=task_spec()), metadata=md)
    run = await secure_stub.SubmitDag(pb.SubmitDagRequest(dag=dag_spec()), metadata=md)
    await secure_stub.PutSchedule(pb.PutScheduleRequest(schedule=schedule_spec()), metadata=md)
    return World(task.task_id, run.run_id)


NOT_FOUND = grpc.StatusCode.NOT_FOUND
DENIED = grpc.StatusCode.PERMISSION_DENIED


def by_id_calls(w: World) -> dict[str, tuple[str, Any]]:
    """RPC name → (method, request) for the calls that reach team-a's objects by id."""
    return {
        "GetTask": ("GetTask", pb.GetTaskRequest(task_id=w.task_id)),
        "CancelTask": ("CancelTask", pb.CancelTaskRequest(task_id=w.task_id)),
        "GetDagRun": ("GetDagRun", pb.GetDagRunRequest(run_id=w.run_id)),
        "CancelDagRun": ("CancelDagRun", pb.CancelDagRunRequest(run_id=w.run_id)),
        "RetryDagRun": ("RetryDagRun", pb.RetryDagRunRequest(run_id=w.run_id)),
    }


def namespace_calls() -> dict[str, tuple[str, Any]]:
    """RPC name → (method, request) for the calls that name team-a's namespace."""
    return {
        "SubmitTask": ("SubmitTask", pb.SubmitTaskRequest(task=task_spec())),
        "SubmitTasks": (
            "SubmitTasks",
            pb.SubmitTasksRequest(tasks=[task_spec("team-b"), task_spec()]),
        ),
        "ListTasks": ("ListTasks", pb.ListTasksRequest(namespace=A)),
        "GetQueueStats": ("GetQueueStats", pb.GetQueueStatsRequest(namespace=A, queue="jobs")),
        "ListQueues": ("ListQueues", pb.ListQueuesRequest(namespace=A)),
        "ListDeadLetters": (
            "ListDeadLetters",
            pb.ListDeadLettersRequest(namespace=A, queue="jobs"),
        ),
        "ReplayDeadLetters": (
            "ReplayDeadLetters",
            pb.ReplayDeadLettersRequest(namespace=A, queue="jobs"),
        ),
        "PutSchedule": ("PutSchedule", pb.PutScheduleRequest(schedule=schedule_spec())),
        "GetSchedule": ("GetSchedule", pb.GetScheduleRequest(namespace=A, name="nightly")),
        "ListSchedules": ("ListSchedules", pb.ListSchedulesRequest(namespace=A)),
        "DeleteSchedule": (
            "DeleteSchedule",
            pb.DeleteScheduleRequest(namespace=A, name="nightly"),
        ),
        "SetScheduleSuspended": (
            "SetScheduleSuspended",
            pb.SetScheduleSuspendedRequest(namespace=A, name="nightly", suspend=True),
        ),
        "SubmitDag": ("SubmitDag", pb.SubmitDagRequest(dag=dag_spec())),
        "ListDagRuns": ("ListDagRuns", pb.ListDagRunsRequest(namespace=A)),
    }


async def test_a_foreign_token_finds_nothing_by_id(secure_stub: Any, world: World) -> None:
    for rpc, (method, request) in by_id_calls(world).items():
        code, details = await failure(getattr(secure_stub, method)(request, metadata=auth(TEAM_B)))
        assert code == NOT_FOUND, rpc
        # The same answer as for an id nobody ever used.
        absent = type(request)(**{f.name: str(uuid.uuid4()) for f, _ in request.ListFields()})
        code2, details2 = await failure(getattr(secure_stub, method)(absent, metadata=auth(ADMIN)))
        assert code2 == NOT_FOUND, rpc
        assert details.replace(world.task_id, "ID").replace(world.run_id, "ID") == (
            details2.replace(next(v for _, v in absent.ListFields()), "ID")
        ), rpc
    code, _ = await stream_failure(
        secure_stub.WatchTask(pb.WatchTaskRequest(task_id=world.task_id), metadata=auth(TEAM_B))
    )
    assert code == NOT_FOUND
    code, _ = await stream_failure(
        secure_stub.WatchDagRun(pb.WatchDagRunRequest(run_id=world.run_id), metadata=auth(TEAM_B))
    )
    assert code == NOT_FOUND


async def test_a_foreign_token_may_not_name_the_namespace(secure_stub: Any, world: World) -> None:
    for rpc, (method, request) in namespace_calls().items():
        code, details = await failure(getattr(secure_stub, method)(request, metadata=auth(TEAM_B)))
        assert code == DENIED, rpc
        assert "'team-a'" in details and "team-b" in details, rpc


async def test_nothing_of_the_foreign_calls_changed_team_a(secure_stub: Any, world: World) -> None:
    for method, request in [*by_id_calls(world).values(), *namespace_calls().values()]:
        with pytest.raises(aio.AioRpcError):
            await getattr(secure_stub, method)(request, metadata=auth(TEAM_B))
    md = auth(TEAM_A)
    task = await secure_stub.GetTask(pb.GetTaskRequest(task_id=world.task_id), metadata=md)
    assert task.state == "queued"
    run = await secure_stub.GetDagRun(pb.GetDagRunRequest(run_id=world.run_id), metadata=md)
    assert run.state == "running"
    schedule = await secure_stub.GetSchedule(
        pb.GetScheduleRequest(namespace=A, name="nightly"), metadata=md
    )
    assert not schedule.spec.suspend
    listed = await secure_stub.ListTasks(
        pb.ListTasksRequest(namespace=A, queue="jobs"), metadata=md
    )
    # The mixed batch of team-b stored nothing, not even its team-b half.
    assert [t.id for t in listed.tasks] == [world.task_id]
    theirs = await secure_stub.ListTasks(
        pb.ListTasksRequest(namespace="team-b"), metadata=auth(TEAM_B)
    )
    assert list(theirs.tasks) == []


async def test_listings_across_namespaces_leave_foreign_objects_out(
    secure_stub: Any, world: World
) -> None:
    await secure_stub.SubmitTask(
        pb.SubmitTaskRequest(task=task_spec("team-b")), metadata=auth(TEAM_B)
    )
    await secure_stub.PutSchedule(
        pb.PutScheduleRequest(schedule=schedule_spec("team-b")), metadata=auth(TEAM_B)
    )
    queues = await secure_stub.ListQueues(pb.ListQueuesRequest(), metadata=auth(TEAM_B))
    assert {q.namespace for q in queues.queues} == {"team-b"}
    schedules = await secure_stub.ListSchedules(pb.ListSchedulesRequest(), metadata=auth(TEAM_B))
    assert {s.spec.namespace for s in schedules.schedules} == {"team-b"}
    every = await secure_stub.ListQueues(pb.ListQueuesRequest(), metadata=auth(ADMIN))
    assert {q.namespace for q in every.queues} == {"team-a", "team-b"}


async def test_roles_limit_what_a_token_in_its_namespace_may_do(
    secure_stub: Any, world: World
) -> None:
    md = auth(READER_A)
    task = await secure_stub.GetTask(pb.GetTaskRequest(task_id=world.task_id), metadata=md)
    assert task.namespace == A
    for call in (
        secure_stub.SubmitTask(pb.SubmitTaskRequest(task=task_spec()), metadata=md),
        secure_stub.CancelTask(pb.CancelTaskRequest(task_id=world.task_id), metadata=md),
        secure_stub.ReplayDeadLetters(
            pb.ReplayDeadLettersRequest(namespace=A, queue="jobs"), metadata=md
        ),
        secure_stub.PutSchedule(pb.PutScheduleRequest(schedule=schedule_spec()), metadata=md),
    ):
        code, details = await failure(call)
        assert code == DENIED
        assert "reader-a" in details
    # A submit-and-read token may not replay or change schedules: those are admin's.
    slow = auth(SLOW)
    code, details = await failure(
        secure_stub.ReplayDeadLetters(
            pb.ReplayDeadLettersRequest(namespace=A, queue="jobs"), metadata=slow
        )
    )
    assert code == DENIED and "'admin'" in details


async def test_submissions_beyond_the_token_rate_are_refused_with_a_retry_hint(
    secure_stub: Any,
) -> None:
    md = auth(SLOW)
    batch = pb.SubmitTasksRequest(tasks=[task_spec(), task_spec()])
    await secure_stub.SubmitTasks(batch, metadata=md)
    await secure_stub.SubmitTask(pb.SubmitTaskRequest(task=task_spec()), metadata=md)
    with pytest.raises(aio.AioRpcError) as info:
        await secure_stub.SubmitTask(pb.SubmitTaskRequest(task=task_spec()), metadata=md)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "slow" in (info.value.details() or "") and "retry after" in (info.value.details() or "")
    trailers = dict(info.value.trailing_metadata() or ())
    assert int(trailers["retry-after-ms"]) > 0
    # Other tokens are not slowed down by it.
    await secure_stub.SubmitTask(pb.SubmitTaskRequest(task=task_spec()), metadata=auth(TEAM_A))
    # A batch larger than the burst can never pass: the message says to split it.
    code, details = await failure(
        secure_stub.SubmitTasks(pb.SubmitTasksRequest(tasks=[task_spec()] * 4), metadata=md)
    )
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "smaller batches" in details


async def test_tokens_rotate_without_a_restart(
    secure_server: ApiServer, secure_stub: Any, tokens_file: TokensFile
) -> None:
    request = pb.ListTasksRequest(namespace=A)
    await secure_stub.ListTasks(request, metadata=auth(TEAM_A))
    rotated = "team-a-rotated-0123456789"
    tokens = [t for t in TOKENS if t["name"] != "team-a"]
    tokens.append({"name": "team-a", "token": rotated, "namespaces": [A], "roles": ["read"]})
    tokens_file.write(tokens)
    code, _ = await failure(secure_stub.ListTasks(request, metadata=auth(TEAM_A)))
    assert code == grpc.StatusCode.UNAUTHENTICATED
    await secure_stub.ListTasks(request, metadata=auth(rotated))
    # A broken file keeps the tokens in force rather than locking everyone out.
    tokens_file.path.write_text("tokens: [{name: broken")
    await secure_stub.ListTasks(request, metadata=auth(rotated))
    assert "team-a" in secure_server.tokens.names


async def test_metrics_need_the_metrics_role(secure_server: ApiServer) -> None:
    url = f"http://127.0.0.1:{secure_server.http_port}"
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{url}/metrics") as r:
            assert r.status == 401
        async with http.get(f"{url}/metrics", headers=_bearer(TEAM_A)) as r:
            assert r.status == 403
        async with http.get(f"{url}/metrics", headers=_bearer(METRICS)) as r:
            assert r.status == 200
        async with http.get(f"{url}/healthz") as r:
            assert r.status == 200


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_the_client_tells_how_long_to_wait_when_rate_limited(
    secure_server: ApiServer,
) -> None:
    async with AsyncClient(
        f"127.0.0.1:{secure_server.grpc_port}", token=SLOW, namespace=A, retry_budget=0
    ) as c:
        await c.submit_many([TaskRequest("jobs", "work") for _ in range(3)])
        with pytest.raises(ResourceExhaustedError) as info:
            await c.submit("jobs", "work")
        assert info.value.retry_after is not None and info.value.retry_after > 0
        assert "retry after" in info.value.details
