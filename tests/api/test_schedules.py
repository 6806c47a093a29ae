"""Schedule RPCs end to end over gRPC, with the raw stubs and with both clients."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import grpc
import pytest

from taskflow.api import ApiServer
from taskflow_client import (
    AlreadyExistsError,
    AsyncClient,
    Client,
    ConcurrencyPolicy,
    InvalidArgumentError,
    NotFoundError,
    RetryPolicy,
    TaskRequest,
)
from taskflow_client._base import Call
from taskflow_client.v1 import tasks_pb2 as pb
from tests.api.conftest import MAX_PAYLOAD, rpc_error


def spec(**fields: Any) -> pb.ScheduleSpec:
    task = pb.TaskSpec(queue="jobs", handler="build", payload_json='{"n": 1}')
    values: dict[str, Any] = {"name": "report", "cron": "0 3 * * *", "task": task, **fields}
    return pb.ScheduleSpec(**values)


async def test_put_get_list_suspend_delete(grpc_stub: Any) -> None:
    put = await grpc_stub.PutSchedule(
        pb.PutScheduleRequest(schedule=spec(timezone="Europe/Paris", concurrency_policy="forbid"))
    )
    assert (put.created, put.changed) == (True, True)
    s = put.schedule
    assert (s.spec.namespace, s.spec.name, s.spec.cron) == ("default", "report", "0 3 * * *")
    assert (s.spec.timezone, s.spec.concurrency_policy) == ("Europe/Paris", "Forbid")
    assert s.spec.task.queue == "jobs" and json.loads(s.spec.task.payload_json) == {"n": 1}
    assert s.HasField("next_fire_time") and not s.HasField("last_fire_time")
    assert s.next_fire_time.ToDatetime().minute == 0
    again = await grpc_stub.PutSchedule(
        pb.PutScheduleRequest(schedule=spec(timezone="Europe/Paris", concurrency_policy="Forbid"))
    )
    assert (again.created, again.changed, again.schedule.id) == (False, False, s.id)
    got = await grpc_stub.GetSchedule(pb.GetScheduleRequest(name="report"))
    assert got.id == s.id and got.fire_count == 0 and got.skip_count == 0
    await grpc_stub.PutSchedule(pb.PutScheduleRequest(schedule=spec(name="b", namespace="t2")))
    listed = await grpc_stub.ListSchedules(pb.ListSchedulesRequest(namespace="default"))
    assert [x.spec.name for x in listed.schedules] == ["report"]
    every = await grpc_stub.ListSchedules(pb.ListSchedulesRequest(page_size=1))
    assert [x.spec.name for x in every.schedules] == ["report"] and every.next_page_token
    rest = await grpc_stub.ListSchedules(
        pb.ListSchedulesRequest(page_size=1, page_token=every.next_page_token)
    )
    assert [x.spec.name for x in rest.schedules] == ["b"] and not rest.next_page_token
    paused = await grpc_stub.SetScheduleSuspended(
        pb.SetScheduleSuspendedRequest(name="report", suspend=True)
    )
    assert paused.spec.suspend and not paused.HasField("next_fire_time")
    deleted = await grpc_stub.DeleteSchedule(pb.DeleteScheduleRequest(name="report"))
    assert deleted.deleted
    deleted = await grpc_stub.DeleteSchedule(pb.DeleteScheduleRequest(name="report"))
    assert not deleted.deleted
    failure = await rpc_error(grpc_stub.GetSchedule(pb.GetScheduleRequest(name="report")))
    assert failure.code == grpc.StatusCode.NOT_FOUND
    assert failure.details == "schedule 'report' not found in namespace 'default'"


@pytest.mark.parametrize(
    ("fields", "details"),
    [
        ({"cron": "61 * * * *"}, "schedule.cron: '61 * * * *' is not a valid cron expression: "),
        ({"timezone": "Mars/Base"}, "schedule.timezone: 'Mars/Base' is not a known time zone"),
        ({"name": ""}, "schedule.name: is required"),
        ({"concurrency_policy": "Queue"}, "schedule.concurrency_policy: 'Queue' is not one of"),
        ({"starting_deadline_seconds": 0}, "schedule.starting_deadline_seconds: must be"),
        ({"task": None}, "schedule.task: is required"),
        ({"task": pb.TaskSpec(queue="jobs")}, "schedule.task.handler: Field required"),
        (
            {"task": pb.TaskSpec(queue="jobs", handler="h", payload_json="{x")},
            "schedule.task.payload_json: is not valid JSON",
        ),
        (
            {"task": pb.TaskSpec(queue="jobs", handler="h", idempotency_key="k")},
            "schedule.task.idempotency_key: is set by the schedule",
        ),
        (
            {"task": pb.TaskSpec(queue="jobs", handler="h", delay_seconds=3)},
            "schedule.task.delay_seconds: is not allowed",
        ),
        (
            {"task": pb.TaskSpec(queue="jobs", handler="h", namespace="other")},
            "schedule.task.namespace: 'other' differs from the schedule's namespace",
        ),
        (
            {"task": pb.TaskSpec(queue="jobs", handler="h", payload_json=f'"{"x" * MAX_PAYLOAD}"')},
            "schedule.task.payload_json: ",
        ),
    ],
)
async def test_invalid_schedules_are_refused_naming_the_field(
    grpc_stub: Any, fields: dict[str, Any], details: str
) -> None:
    if fields.get("task", "") is None:
        request = pb.PutScheduleRequest(schedule=pb.ScheduleSpec(name="n", cron="* * * * *"))
    else:
        request = pb.PutScheduleRequest(schedule=spec(**fields))
    failure = await rpc_error(grpc_stub.PutSchedule(request))
    assert failure.code == grpc.StatusCode.INVALID_ARGUMENT
    assert failure.details.startswith(details), failure.details
    listed = await grpc_stub.ListSchedules(pb.ListSchedulesRequest())
    assert list(listed.schedules) == []


async def test_a_schedule_of_another_owner_is_not_taken_over(grpc_stub: Any) -> None:
    await grpc_stub.PutSchedule(pb.PutScheduleRequest(schedule=spec(owner="file:/a.yaml")))
    failure = await rpc_error(grpc_stub.PutSchedule(pb.PutScheduleRequest(schedule=spec())))
    assert failure.code == grpc.StatusCode.ALREADY_EXISTS
    assert "managed by 'file:/a.yaml', not by the API" in failure.details


async def test_the_async_client(api_server: ApiServer) -> None:
    async with AsyncClient(f"127.0.0.1:{api_server.grpc_port}", retries=1) as client:
        task = TaskRequest(
            queue="jobs",
            handler="build",
            payload={"n": [1, 2]},
            priority=4,
            max_retries=2,
            timeout=30,
            retry=RetryPolicy(1, 2, 60),
            labels={"team": "data"},
        )
        made = await client.put_schedule(
            "nightly",
            "30 2 * * *",
            task,
            timezone="America/New_York",
            concurrency_policy=ConcurrencyPolicy.REPLACE,
            starting_deadline_seconds=300,
        )
        assert made.concurrency_policy is ConcurrencyPolicy.REPLACE
        assert made.starting_deadline_seconds == 300
        assert made.task == TaskRequest(
            queue="jobs",
            handler="build",
            payload={"n": [1, 2]},
            priority=4,
            max_retries=2,
            timeout=30.0,
            retry=RetryPolicy(1.0, 2.0, 60.0),
            labels={"team": "data"},
            namespace="default",
        )
        assert made.next_fire_time is not None and made.next_fire_time.tzinfo is not None
        assert (await client.get_schedule("nightly")).id == made.id
        assert [s.name for s in await client.list_schedules()] == ["nightly"]
        assert (await client.suspend_schedule("nightly")).next_fire_time is None
        assert (await client.resume_schedule("nightly")).next_fire_time == made.next_fire_time
        with pytest.raises(InvalidArgumentError) as info:
            await client.put_schedule("x", "* * *", {"queue": "q", "handler": "h"})
        assert info.value.field == "schedule.cron"
        with pytest.raises(InvalidArgumentError, match=r"task\.queu: unknown key"):
            await client.put_schedule("x", "* * * * *", {"queu": "q", "handler": "h"})
        assert await client.delete_schedule("nightly")
        assert not await client.delete_schedule("nightly")
        with pytest.raises(NotFoundError):
            await client.get_schedule("nightly")


async def test_the_sync_client(api_server: ApiServer) -> None:
    def calls() -> None:
        with Client(f"127.0.0.1:{api_server.grpc_port}", namespace="team-a", retries=1) as c:
            made = c.put_schedule("hourly", "@hourly", {"queue": "q", "handler": "h"})
            assert (made.namespace, made.cron, made.timezone) == ("team-a", "0 * * * *", "UTC")
            assert made.task is not None and made.task.namespace == "team-a"
            assert [s.name for s in c.list_schedules()] == ["hourly"]
            assert c.list_schedules("default") == []
            assert [s.namespace for s in c.list_schedules("")] == ["team-a"]
            assert c.suspend_schedule("hourly").suspend
            with pytest.raises(AlreadyExistsError, match="managed by the API"):
                _conflict(c)
            assert c.delete_schedule("hourly")

    await asyncio.to_thread(calls)


def _conflict(client: Client) -> None:
    """A schedule the API owns cannot be put under another owner (from the raw stub)."""
    request = pb.PutScheduleRequest(
        schedule=pb.ScheduleSpec(
            namespace="team-a",
            name="hourly",
            cron="@hourly",
            owner="file:/x.yaml",
            task=pb.TaskSpec(queue="q", handler="h"),
        )
    )
    client._run(Call("PutSchedule", request, frozenset(), lambda reply: reply))
