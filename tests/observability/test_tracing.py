"""One trace from the application to the handler: the client's submit span, the API server's
span under it, and the worker's span of each attempt under that, DAG steps included."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from taskflow.telemetry import tracing
from taskflow_client import AsyncClient
from taskflow_client._tracing import TRACEPARENT_LABEL as CLIENT_LABEL
from tests.observability.conftest import QUEUE, Stack

EXPORTER = InMemorySpanExporter()


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Tracing on in this process, every finished span kept in memory."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
        trace.set_tracer_provider(provider)
    assert tracing.setup_tracing("taskflow-test", force=True)
    EXPORTER.clear()
    yield EXPORTER
    tracing.disable_tracing()


async def finished(
    exporter: InMemorySpanExporter, name: str, count: int = 1, timeout: float = 30.0
) -> list[ReadableSpan]:
    """The finished spans called ``name``, once there are ``count`` of them."""
    deadline = time.monotonic() + timeout
    while True:
        found = [s for s in exporter.get_finished_spans() if s.name == name]
        if len(found) >= count:
            return found
        assert time.monotonic() < deadline, [s.name for s in exporter.get_finished_spans()]
        await asyncio.sleep(0.05)


def parent_id(span: ReadableSpan) -> int:
    assert span.parent is not None, span.name
    return span.parent.span_id


def test_both_clients_use_the_engine_label() -> None:
    assert CLIENT_LABEL == tracing.TRACEPARENT_LABEL


async def test_client_api_and_worker_spans_form_one_trace(
    spans: InMemorySpanExporter, stack: Stack
) -> None:
    tracer = trace.get_tracer("app")
    async with AsyncClient(stack.target) as client:
        with tracer.start_as_current_span("checkout") as app:
            task_id = await client.submit(QUEUE, "ok", {"n": 1})
        assert (await client.wait(task_id, timeout=30)).state == "succeeded"
        task = await client.get(task_id)

    [worker] = await finished(spans, "run ok")
    await finished(spans, "taskflow.v1.TaskService/SubmitTask", count=2)  # client and server
    server = [
        s
        for s in spans.get_finished_spans()
        if s.name == "taskflow.v1.TaskService/SubmitTask" and s.kind is SpanKind.SERVER
    ]
    client_spans = [s for s in spans.get_finished_spans() if s.kind is SpanKind.CLIENT]
    assert len(server) == 1 and len(client_spans) == 1, spans.get_finished_spans()
    client_span, api = client_spans[0], server[0]

    trace_id = app.get_span_context().trace_id
    assert {s.context.trace_id for s in (client_span, api, worker)} == {trace_id}
    assert parent_id(client_span) == app.get_span_context().span_id
    assert parent_id(api) == client_span.context.span_id
    assert parent_id(worker) == api.context.span_id
    assert worker.kind is SpanKind.CONSUMER
    assert worker.attributes is not None
    assert worker.attributes["taskflow.task_id"] == task_id
    assert worker.attributes["taskflow.attempt"] == 1
    assert worker.attributes["taskflow.outcome"] == "succeeded"
    # the task records the context it was submitted in: the API server's span
    assert f"{api.context.span_id:016x}" in task.labels[tracing.TRACEPARENT_LABEL]


async def test_each_attempt_of_a_failing_task_is_an_error_span(
    spans: InMemorySpanExporter, stack: Stack
) -> None:
    from taskflow_client import RetryPolicy

    fast = RetryPolicy(initial_seconds=0.01, multiplier=1.0, max_seconds=0.01)
    async with AsyncClient(stack.target) as client:
        task_id = await client.submit(QUEUE, "boom", max_retries=1, retry=fast)
        assert (await client.wait(task_id, timeout=30)).state == "failed"
    attempts = await finished(spans, "run boom", count=2)
    [api] = [s for s in spans.get_finished_spans() if s.kind is SpanKind.SERVER]
    assert sorted(s.attributes["taskflow.attempt"] for s in attempts if s.attributes) == [1, 2]
    for span in attempts:
        assert span.status.status_code is StatusCode.ERROR
        assert "boom" in (span.status.description or "")
        assert parent_id(span) == api.context.span_id


async def test_dag_steps_are_children_of_the_run_submission(
    spans: InMemorySpanExporter, stack: Stack
) -> None:
    async with AsyncClient(stack.target) as client:
        run_id = await client.submit_dag(
            [
                {"name": "first", "handler": "ok"},
                {"name": "second", "handler": "ok", "depends_on": ["first"]},
            ],
            queue=QUEUE,
        )
        assert (await client.wait_dag(run_id, timeout=30)).state == "succeeded"
    steps = await finished(spans, "run ok", count=2)
    [api] = [
        s
        for s in spans.get_finished_spans()
        if s.kind is SpanKind.SERVER and s.name.endswith("/SubmitDag")
    ]
    assert {s.attributes["taskflow.step"] for s in steps if s.attributes} == {"first", "second"}
    for step in steps:
        assert step.context.trace_id == api.context.trace_id
        assert parent_id(step) == api.context.span_id
        assert step.attributes is not None and step.attributes["taskflow.run_id"] == run_id


async def test_without_a_tracing_server_the_task_carries_the_clients_context(
    spans: InMemorySpanExporter, stack: Stack
) -> None:
    """The stack's API server was built before tracing was on here: it has no span, so the
    worker's span hangs under the client's."""
    tracing.disable_tracing()
    from taskflow.api import ApiServer

    server = ApiServer(stack.engine, grpc_addr="127.0.0.1:0", http_addr="127.0.0.1:0")
    await server.start()
    assert tracing.setup_tracing("taskflow-test", force=True)
    try:
        async with AsyncClient(f"127.0.0.1:{server.grpc_port}") as client:
            task_id = await client.submit(QUEUE, "ok")
            assert (await client.wait(task_id, timeout=30)).state == "succeeded"
    finally:
        await server.stop(1)
    [worker] = await finished(spans, "run ok")
    [client_span] = [s for s in spans.get_finished_spans() if s.kind is SpanKind.CLIENT]
    assert not [s for s in spans.get_finished_spans() if s.kind is SpanKind.SERVER]
    assert parent_id(worker) == client_span.context.span_id


def test_tracing_is_off_unless_the_environment_asks() -> None:
    assert not tracing.wanted({})
    assert not tracing.wanted({"OTEL_TRACES_EXPORTER": "none"})
    assert tracing.wanted({"OTEL_TRACES_EXPORTER": "otlp"})
    assert tracing.wanted({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"})
    assert not tracing.wanted({"OTEL_EXPORTER_OTLP_ENDPOINT": "x", "OTEL_TRACES_EXPORTER": "none"})


def test_the_client_works_without_opentelemetry() -> None:
    """``opentelemetry-api`` is optional for the client: absent, calls carry nothing more."""
    script = textwrap.dedent(
        """
        import sys
        from importlib.abc import MetaPathFinder

        class Block(MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "opentelemetry":
                    raise ImportError(name)
                return None

        sys.meta_path.insert(0, Block())
        from taskflow_client import _tracing
        from taskflow_client.v1 import tasks_pb2 as pb

        request = pb.SubmitTaskRequest(task=pb.TaskSpec(queue="q", handler="h"))
        with _tracing.traced("SubmitTask", request, (("a", "b"),)) as metadata:
            assert metadata == (("a", "b"),), metadata
        assert not request.task.labels
        print("ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.stdout.strip() == "ok", result.stderr


def go_spans(stderr: str) -> list[dict[str, Any]]:
    """The spans the Go client printed (``-trace``: one JSON object per span)."""
    decoder = json.JSONDecoder()
    spans, i = [], 0
    while (start := stderr.find("{", i)) >= 0:
        span, i = decoder.raw_decode(stderr, start)
        spans.append(span)
    return spans


async def test_the_go_client_propagates_its_context(
    spans: InMemorySpanExporter, stack: Stack, go_client_binary: Path
) -> None:
    trace_id, parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    proc = await asyncio.create_subprocess_exec(
        str(go_client_binary), "-addr", stack.target, "-queue", QUEUE, "-handler", "ok",
        "-payload", '{"from": "go"}', "-timeout", "60s", "-trace",
        env={**os.environ, "TRACEPARENT": f"00-{trace_id}-{parent}-01"},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()
    task_id = json.loads(out)["task_id"]
    [go] = [s for s in go_spans(err.decode()) if s["Name"].endswith("/SubmitTask")]
    assert go["SpanContext"]["TraceID"] == trace_id
    assert go["Parent"]["SpanID"] == parent

    [worker] = await finished(spans, "run ok")
    [api] = [s for s in spans.get_finished_spans() if s.kind is SpanKind.SERVER]
    assert f"{api.context.trace_id:032x}" == trace_id
    assert f"{parent_id(api):016x}" == go["SpanContext"]["SpanID"]
    assert parent_id(worker) == api.context.span_id
    assert worker.attributes is not None and worker.attributes["taskflow.task_id"] == task_id


def test_without_the_extra_the_environment_alone_leaves_tracing_off() -> None:
    """OTEL_* set for a whole cluster must not stop a worker built without the extra;
    ``--tracing`` without it is an error that says what to install."""
    script = textwrap.dedent(
        """
        import sys
        from importlib.abc import MetaPathFinder

        class Block(MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "opentelemetry":
                    raise ImportError(name)
                return None

        sys.meta_path.insert(0, Block())
        import os
        from taskflow.telemetry import tracing

        os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = "http://collector:4317"
        assert tracing.setup_tracing("t") is False
        try:
            tracing.setup_tracing("t", force=True)
        except tracing.TracingUnavailable as exc:
            print(exc)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "pip install 'taskflow[tracing]'" in result.stdout, result.stdout + result.stderr
