"""The server around the task service: auth, health, reflection, HTTP endpoints, lifecycle."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import aiohttp
import grpc
import pytest
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from taskflow.api import ApiServer, serve
from taskflow.config import Settings
from taskflow.embedded import free_port
from taskflow.engine import Engine
from taskflow.store import apply_migrations
from taskflow_client.v1 import tasks_pb2 as pb
from taskflow_client.v1 import tasks_pb2_grpc as pb_grpc
from tests.api.conftest import QUEUE, open_channel, rpc_error, spec, submit

TOKEN = "s3cret-token"
TASK_SERVICE = "taskflow.v1.TaskService"


@pytest.fixture
async def secured_server(settings: Settings) -> AsyncIterator[ApiServer]:
    await apply_migrations(settings.database_url)
    engine = await Engine.connect(replace(settings, api_token=TOKEN))
    server = ApiServer(engine, grpc_addr="127.0.0.1:0", http_addr="127.0.0.1:0")
    await server.start()
    yield server
    await server.stop(grace=1)
    await engine.close()


async def test_token_is_required_when_configured(secured_server: ApiServer) -> None:
    async with open_channel(f"127.0.0.1:{secured_server.grpc_port}") as channel:
        stub = pb_grpc.TaskServiceStub(channel)
        err = await rpc_error(stub.ListTasks(pb.ListTasksRequest()))
        assert err.code == grpc.StatusCode.UNAUTHENTICATED
        err = await rpc_error(
            stub.ListTasks(pb.ListTasksRequest(), metadata=[("authorization", "Bearer wrong")])
        )
        assert err.code == grpc.StatusCode.UNAUTHENTICATED
        stream = stub.WatchTask(pb.WatchTaskRequest(task_id="x"))
        err = await rpc_error(stream.read())
        assert err.code == grpc.StatusCode.UNAUTHENTICATED

        auth = [("authorization", f"Bearer {TOKEN}")]
        response = await stub.SubmitTask(pb.SubmitTaskRequest(task=spec()), metadata=auth)
        task = await stub.GetTask(pb.GetTaskRequest(task_id=response.task_id), metadata=auth)
        assert task.state == "queued"

        # Probes and tooling need no token.
        health = health_pb2_grpc.HealthStub(channel)
        checked = await health.Check(health_pb2.HealthCheckRequest())
        assert checked.status == health_pb2.HealthCheckResponse.SERVING
        assert await list_services(channel) != []


async def test_health_reports_serving_for_the_server_and_the_task_service(
    channel: aio.Channel,
) -> None:
    stub = health_pb2_grpc.HealthStub(channel)
    for service in ("", "taskflow.v1.TaskService"):
        response = await stub.Check(health_pb2.HealthCheckRequest(service=service))
        assert response.status == health_pb2.HealthCheckResponse.SERVING
    err = await rpc_error(stub.Check(health_pb2.HealthCheckRequest(service="nope")))
    assert err.code == grpc.StatusCode.NOT_FOUND


async def list_services(channel: aio.Channel) -> list[str]:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    responses = [r async for r in stub.ServerReflectionInfo(iter([request]))]
    return [s.name for s in responses[0].list_services_response.service]


async def test_reflection_describes_the_task_service(channel: aio.Channel) -> None:
    services = await list_services(channel)
    assert "taskflow.v1.TaskService" in services
    assert "grpc.health.v1.Health" in services

    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    request = reflection_pb2.ServerReflectionRequest(
        file_containing_symbol="taskflow.v1.TaskService"
    )
    (response,) = [r async for r in stub.ServerReflectionInfo(iter([request]))]
    assert response.file_descriptor_response.file_descriptor_proto


async def http_get(server: ApiServer, path: str) -> tuple[int, str]:
    url = f"http://127.0.0.1:{server.http_port}{path}"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.text()


async def test_http_probes(api_server: ApiServer) -> None:
    assert await http_get(api_server, "/healthz") == (200, "ok\n")
    assert await http_get(api_server, "/readyz") == (200, "ready\n")


class Samples:
    """The samples of a Prometheus text exposition, looked up by name and labels."""

    def __init__(self, text: str) -> None:
        self._values = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    def __call__(self, name: str, **labels: str) -> float:
        return self._values[(name, tuple(sorted(labels.items())))]


async def test_metrics_count_rpcs_submissions_and_queue_backlog(
    api_server: ApiServer, grpc_stub: Any
) -> None:
    await submit(grpc_stub)
    await submit(grpc_stub, idempotency_key="k")
    await submit(grpc_stub, idempotency_key="k")
    await submit(grpc_stub, delay_seconds=600)
    await rpc_error(grpc_stub.GetTask(pb.GetTaskRequest(task_id="bad")))

    status, text = await http_get(api_server, "/metrics")
    assert status == 200
    value = Samples(text)
    assert value("taskflow_api_requests_total", method="SubmitTask", code="OK") == 4
    assert value("taskflow_api_requests_total", method="GetTask", code="INVALID_ARGUMENT") == 1
    latency = "taskflow_api_request_duration_seconds_count"
    assert value(latency, method="SubmitTask", code="OK") == 4
    queue = {"namespace": "default", "queue": QUEUE.name}
    assert value("taskflow_tasks_submitted_total", **queue, handler="work") == 3
    assert value("taskflow_queue_ready", **queue) == 2
    assert value("taskflow_queue_scheduled", **queue) == 1
    assert value("taskflow_queue_running", **queue) == 0
    assert value("taskflow_queue_stats_up") == 1


async def test_each_server_has_its_own_metrics(engine: Engine) -> None:
    a = ApiServer(engine, grpc_addr="127.0.0.1:0", http_addr="127.0.0.1:0")
    b = ApiServer(engine, grpc_addr="127.0.0.1:0", http_addr="127.0.0.1:0")
    assert a.metrics.registry is not b.metrics.registry


async def test_serve_runs_until_stopped(settings: Settings) -> None:
    await apply_migrations(settings.database_url)
    grpc_port = free_port()
    stop = asyncio.Event()
    running = asyncio.create_task(
        serve(settings, f"127.0.0.1:{grpc_port}", f"127.0.0.1:{free_port()}", stop)
    )
    try:
        async with open_channel(f"127.0.0.1:{grpc_port}") as channel:
            await asyncio.wait_for(channel.channel_ready(), 30)
            stub = pb_grpc.TaskServiceStub(channel)
            task_id = await submit(stub)
            task = await stub.GetTask(pb.GetTaskRequest(task_id=task_id))
            assert task.state == "queued"
    finally:
        stop.set()
        await asyncio.wait_for(running, 30)


async def test_unexpected_errors_are_internal_without_details(
    engine: Engine,
    grpc_stub: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken(namespace: str | None) -> list[Any]:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(engine, "list_queues", broken)
    err = await rpc_error(grpc_stub.ListQueues(pb.ListQueuesRequest()))
    assert err.code == grpc.StatusCode.INTERNAL
    assert "secret" not in err.details
    assert "secret internals" in caplog.text


async def test_a_taken_port_fails_start_cleanly(engine: Engine, api_server: ApiServer) -> None:
    clash = ApiServer(
        engine, grpc_addr=f"127.0.0.1:{api_server.grpc_port}", http_addr="127.0.0.1:0"
    )
    with pytest.raises((OSError, RuntimeError)):
        await clash.start()
    with pytest.raises(RuntimeError, match="not started"):
        _ = clash.grpc_port
