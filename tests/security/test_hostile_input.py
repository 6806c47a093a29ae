"""Hostile input, property-based: whatever a client sends, the server answers with a clear
status (never UNKNOWN or INTERNAL), bounded details, and stores all of a batch or none of it.

The budget is small by default; ``TASKFLOW_HYPOTHESIS_EXAMPLES=2000`` runs a longer search.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taskflow.api import ApiServer
from taskflow.api.status import MAX_DETAILS_CHARS
from taskflow.engine import Engine
from taskflow_client.v1 import tasks_pb2 as pb
from taskflow_client.v1 import tasks_pb2_grpc as pb_grpc

EXAMPLES = int(os.environ.get("TASKFLOW_HYPOTHESIS_EXAMPLES", "30"))
BUDGET = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=EXAMPLES <= 30,
)

#: Answers bad input may get: each says what was wrong; none is a crash.
CLEAR = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS,
}

SERVICE = pb.DESCRIPTOR.services_by_name["TaskService"]
UNARY = [m for m in SERVICE.methods if not m.server_streaming]
STREAMING = [m for m in SERVICE.methods if m.server_streaming]


class Sync:
    """A blocking channel to the server, for hypothesis tests run in a worker thread."""

    def __init__(self, port: int) -> None:
        self.channel = grpc.insecure_channel(
            f"127.0.0.1:{port}", options=[("grpc.max_send_message_length", 64 * 1024 * 1024)]
        )
        self.stub = pb_grpc.TaskServiceStub(self.channel)

    def raw(self, method: str, data: bytes, streaming: bool) -> tuple[grpc.StatusCode, str]:
        path = f"/{SERVICE.full_name}/{method}"
        try:
            if streaming:
                call = self.channel.unary_stream(path)(data, timeout=10)
                next(iter(call), None)
                call.cancel()
            else:
                self.channel.unary_unary(path)(data, timeout=10)
        except grpc.RpcError as exc:
            return exc.code(), exc.details() or ""  # type: ignore[attr-defined]
        return grpc.StatusCode.OK, ""

    def call(self, method: str, request: Any) -> tuple[grpc.StatusCode, str, Any]:
        try:
            return grpc.StatusCode.OK, "", getattr(self.stub, method)(request, timeout=10)
        except grpc.RpcError as exc:
            return exc.code(), exc.details() or "", None  # type: ignore[attr-defined]

    def close(self) -> None:
        self.channel.close()


@pytest.fixture
async def server(engine: Engine) -> AsyncIterator[ApiServer]:
    s = ApiServer(engine, grpc_addr="127.0.0.1:0", http_addr="127.0.0.1:0")
    await s.start()
    yield s
    await s.stop(grace=1)


async def run_in_thread(server: ApiServer, body: Callable[[Sync], None]) -> None:
    """Run ``body`` (a hypothesis test) against ``server`` from a thread, then check that
    the server is still serving."""
    sync = Sync(server.grpc_port)
    try:
        await asyncio.to_thread(body, sync)
        health = health_pb2_grpc.HealthStub(sync.channel)
        status = await asyncio.to_thread(health.Check, health_pb2.HealthCheckRequest())
        assert status.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        sync.close()


def assert_clear(code: grpc.StatusCode, details: str, what: str) -> None:
    assert code in CLEAR, f"{what}: {code} {details[:300]}"
    assert len(details) <= MAX_DETAILS_CHARS, f"{what}: {len(details)} characters of details"


# -- strategies -------------------------------------------------------------------------------

#: Text with what hurts: controls, bidi overrides, zero-width marks, NUL, surrogate-free
#: astral characters, and sometimes a lot of it.
hostile_char = st.one_of(
    st.characters(codec="utf-8"),
    st.sampled_from(["\x00", "\n", "\r", "\t", " ", "\u202e", "\u2066", "\u200b", "\ufeff", "/"]),
)
hostile_text = st.one_of(
    st.text(hostile_char, max_size=40),
    st.text(st.sampled_from("ab-_.:/"), min_size=1, max_size=300),
    st.builds(lambda n: "x" * n, st.integers(0, 100_000)),
)
int32 = st.integers(-(2**31), 2**31 - 1)
uint32 = st.integers(0, 2**31 - 1)
double = st.floats(allow_nan=True, allow_infinity=True)
json_text = st.one_of(
    st.just(""),
    hostile_text,
    st.recursive(
        st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=10)),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner),
        max_leaves=20,
    ).map(lambda v: __import__("json").dumps(v)),
    st.integers(1, 50_000).map(lambda n: "[" * n + "]" * n),
)
labels = st.dictionaries(hostile_text, hostile_text, max_size=5)


def task_specs(queue: st.SearchStrategy[str] | None = None) -> st.SearchStrategy[pb.TaskSpec]:
    return st.builds(
        pb.TaskSpec,
        namespace=st.one_of(st.just(""), hostile_text),
        queue=queue if queue is not None else st.one_of(st.just("jobs"), hostile_text),
        handler=st.one_of(st.just("work"), hostile_text),
        payload_json=json_text,
        priority=int32,
        delay_seconds=double,
        timeout_seconds=double,
        idempotency_key=st.one_of(st.just(""), hostile_text),
        concurrency_key=st.one_of(st.just(""), hostile_text),
        concurrency_limit=int32,
        labels=labels,
    )


def messages_for(method: Any) -> st.SearchStrategy[Any]:
    """Random well-formed messages of ``method``'s request type (every string field hostile)."""
    cls = pb.__dict__[method.input_type.name]
    fields: dict[str, Any] = {}
    for f in method.input_type.fields:
        if f.message_type is not None:
            continue
        if f.type == f.TYPE_STRING:
            fields[f.name] = st.lists(hostile_text, max_size=3) if f.is_repeated else hostile_text
        elif f.type == f.TYPE_BOOL:
            fields[f.name] = st.booleans()
        elif f.type in (f.TYPE_INT32, f.TYPE_SINT32):
            fields[f.name] = int32
    return st.builds(cls, **fields)


# -- properties -------------------------------------------------------------------------------


async def test_corrupt_bytes_to_every_rpc_get_a_clear_answer(server: ApiServer) -> None:
    methods = st.sampled_from(
        [(m.name, False) for m in UNARY] + [(m.name, True) for m in STREAMING]
    )
    corrupt = st.one_of(
        st.binary(max_size=300),
        st.sampled_from([b"\xff\xff\xff\xff\x0f", b"\x0a\x03\xff\xfe\xfd", b"\x0a\xff\x01"]),
    )

    @BUDGET
    @given(method=methods, data=corrupt)
    def body(sync: Sync, method: tuple[str, bool], data: bytes) -> None:
        code, details = sync.raw(method[0], data, method[1])
        assert_clear(code, details, method[0])

    await run_in_thread(server, body)


async def test_invalid_utf8_is_invalid_argument_everywhere(server: ApiServer) -> None:
    def body(sync: Sync) -> None:
        for m in [*UNARY, *STREAMING]:
            string = next(
                (f for f in m.input_type.fields if f.type == f.TYPE_STRING and not f.is_repeated),
                None,
            )
            if string is None:
                continue
            tag = (string.number << 3) | 2
            code, details = sync.raw(m.name, bytes([tag, 3, 0xFF, 0xFE, 0xFD]), m.server_streaming)
            assert code == grpc.StatusCode.INVALID_ARGUMENT, (m.name, code, details)
            assert "UTF-8" in details

    await run_in_thread(server, body)


async def test_random_fields_of_every_rpc_get_a_clear_answer(server: ApiServer) -> None:
    calls = st.one_of(
        *[st.tuples(st.just(m.name), messages_for(m)) for m in UNARY],
    )

    @BUDGET
    @given(call=calls)
    def body(sync: Sync, call: tuple[str, Any]) -> None:
        code, details, _ = sync.call(*call)
        assert_clear(code, details, call[0])

    await run_in_thread(server, body)


async def test_random_task_specs_are_stored_as_sent_or_refused(server: ApiServer) -> None:
    @BUDGET
    @given(spec=task_specs())
    def body(sync: Sync, spec: pb.TaskSpec) -> None:
        code, details, response = sync.call("SubmitTask", pb.SubmitTaskRequest(task=spec))
        assert_clear(code, details, "SubmitTask")
        if response is None:
            return
        code, details, task = sync.call("GetTask", pb.GetTaskRequest(task_id=response.task_id))
        assert code == grpc.StatusCode.OK, details
        assert (task.queue, task.handler, dict(task.labels)) == (
            spec.queue,
            spec.handler,
            dict(spec.labels),
        )

    await run_in_thread(server, body)


async def test_a_batch_with_one_bad_task_stores_none_of_it(server: ApiServer) -> None:
    @BUDGET
    @given(
        good=st.lists(
            st.builds(pb.TaskSpec, queue=st.just("batch"), handler=st.just("work")),
            min_size=1,
            max_size=20,
        ),
        bad=task_specs(queue=st.just("batch")),
        at=st.integers(0, 20),
    )
    def body(sync: Sync, good: list[pb.TaskSpec], bad: pb.TaskSpec, at: int) -> None:
        before = sync.call("ListTasks", pb.ListTasksRequest(queue="batch", page_size=1000))[2]
        tasks = list(good)
        tasks.insert(min(at, len(tasks)), bad)
        code, details, response = sync.call("SubmitTasks", pb.SubmitTasksRequest(tasks=tasks))
        assert_clear(code, details, "SubmitTasks")
        after = sync.call("ListTasks", pb.ListTasksRequest(queue="batch", page_size=1000))[2]
        if response is None:
            assert len(after.tasks) == len(before.tasks), details
            assert "tasks[" in details or details.startswith("request")
        else:
            assert len(after.tasks) - len(before.tasks) == len(
                {r.task_id for r in response.results} - {t.id for t in before.tasks}
            )

    await run_in_thread(server, body)


async def test_random_dags_and_schedules_get_a_clear_answer(server: ApiServer) -> None:
    names = st.one_of(st.sampled_from(["a", "b", "c"]), hostile_text)
    steps = st.lists(
        st.builds(
            pb.DagStep,
            name=names,
            depends_on=st.lists(names, max_size=3),
            task=st.builds(pb.TaskSpec, handler=st.one_of(st.just("h"), hostile_text)),
        ),
        max_size=6,
    )
    dags = st.builds(
        pb.DagSpec,
        namespace=st.one_of(st.just(""), hostile_text),
        queue=st.one_of(st.just("etl"), hostile_text),
        failure_policy=st.one_of(st.sampled_from(["", "fail_fast", "continue"]), hostile_text),
        steps=steps,
        labels=labels,
    )
    schedules = st.builds(
        pb.ScheduleSpec,
        name=st.one_of(st.just("nightly"), hostile_text),
        cron=st.one_of(st.sampled_from(["0 3 * * *", "@daily", "61 * * * *"]), hostile_text),
        timezone=st.one_of(st.sampled_from(["", "Europe/Paris", "Mars/Olympus"]), hostile_text),
        concurrency_policy=st.one_of(st.sampled_from(["", "Allow", "Forbid"]), hostile_text),
        task=task_specs(),
    )

    @BUDGET
    @given(dag=dags, schedule=schedules)
    def body(sync: Sync, dag: pb.DagSpec, schedule: pb.ScheduleSpec) -> None:
        code, details, _ = sync.call("SubmitDag", pb.SubmitDagRequest(dag=dag))
        assert_clear(code, details, "SubmitDag")
        code, details, _ = sync.call("PutSchedule", pb.PutScheduleRequest(schedule=schedule))
        assert_clear(code, details, "PutSchedule")

    await run_in_thread(server, body)


# -- fixed hostile cases ----------------------------------------------------------------------


async def test_huge_ids_and_values_never_echo_back_whole(server: ApiServer) -> None:
    huge = "x" * 100_000

    def body(sync: Sync) -> None:
        for method, request in [
            ("GetTask", pb.GetTaskRequest(task_id=huge)),
            ("CancelTask", pb.CancelTaskRequest(task_id=huge)),
            ("GetDagRun", pb.GetDagRunRequest(run_id=huge)),
            ("ListTasks", pb.ListTasksRequest(states=[huge])),
            ("ListTasks", pb.ListTasksRequest(page_token=huge)),
            ("ReplayDeadLetters", pb.ReplayDeadLettersRequest(queue="q", task_ids=[huge] * 50)),
            ("SubmitTask", pb.SubmitTaskRequest(task=pb.TaskSpec(queue=huge, handler="h"))),
            ("SubmitTask", pb.SubmitTaskRequest(task=pb.TaskSpec(queue="q", handler=huge))),
            ("GetSchedule", pb.GetScheduleRequest(name=huge)),
        ]:
            code, details, _ = sync.call(method, request)
            refused = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND}
            assert code in refused, (method, code, details[:200])
            assert len(details) <= MAX_DETAILS_CHARS, method
        code, details = sync.raw(
            "WatchTask", pb.WatchTaskRequest(task_id=huge).SerializeToString(), True
        )
        assert code == grpc.StatusCode.INVALID_ARGUMENT and len(details) <= MAX_DETAILS_CHARS

    await run_in_thread(server, body)


async def test_labels_cannot_get_around_the_payload_limit(server: ApiServer) -> None:
    limit = server.engine.settings.max_payload_bytes
    big = {f"k{i}": "v" * 1024 for i in range(60)}
    assert sum(len(v) for v in big.values()) < limit

    def body(sync: Sync) -> None:
        payload = '"' + "p" * (limit - 30_000) + '"'
        spec = pb.TaskSpec(queue="q", handler="h", payload_json=payload, labels=big)
        code, details, _ = sync.call("SubmitTask", pb.SubmitTaskRequest(task=spec))
        assert code == grpc.StatusCode.INVALID_ARGUMENT
        assert details.startswith("task.labels:") and "exceeds the limit" in details
        many = {f"k{i}": "v" for i in range(65)}
        code, details, _ = sync.call(
            "SubmitTask",
            pb.SubmitTaskRequest(task=pb.TaskSpec(queue="q", handler="h", labels=many)),
        )
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "at most 64" in details

    await run_in_thread(server, body)


@pytest.mark.parametrize(
    "handler",
    [" ", "a b", "line\nbreak", "\u202eevil", "zero\u200bwidth", "tab\t", "", "x" * 201],
)
async def test_names_with_spaces_controls_or_bidi_marks_are_refused(
    server: ApiServer, handler: str
) -> None:
    def body(sync: Sync) -> None:
        for spec, field in [
            (pb.TaskSpec(queue="q", handler=handler), "task.handler"),
            (pb.TaskSpec(queue=handler or " ", handler="h"), "task.queue"),
            (pb.TaskSpec(queue="q", handler="h", labels={handler or " ": "v"}), "task.labels"),
            (
                pb.TaskSpec(queue="q", handler="h", idempotency_key=handler + "\n"),
                "task.idempotency_key",
            ),
        ]:
            code, details, _ = sync.call("SubmitTask", pb.SubmitTaskRequest(task=spec))
            assert code == grpc.StatusCode.INVALID_ARGUMENT, (field, details)
            assert details.startswith(field), details

    await run_in_thread(server, body)


async def test_an_idempotency_key_reused_for_another_task_is_a_clear_error(
    server: ApiServer,
) -> None:
    def body(sync: Sync) -> None:
        first = pb.TaskSpec(queue="q", handler="h", payload_json='{"a": 1}', idempotency_key="k")
        code, _, created = sync.call("SubmitTask", pb.SubmitTaskRequest(task=first))
        assert code == grpc.StatusCode.OK
        # The same task again (JSON spelled differently) is the same task: a safe retry.
        again = pb.TaskSpec(queue="q", handler="h", payload_json='{"a":1}', idempotency_key="k")
        code, _, same = sync.call("SubmitTask", pb.SubmitTaskRequest(task=again))
        assert code == grpc.StatusCode.OK and same.task_id == created.task_id and not same.created
        other = pb.TaskSpec(queue="q", handler="h", payload_json='{"a": 2}', idempotency_key="k")
        code, details, _ = sync.call("SubmitTask", pb.SubmitTaskRequest(task=other))
        assert code == grpc.StatusCode.ALREADY_EXISTS
        assert details.startswith("task.idempotency_key: 'k' is already the key of task")
        # In a batch, the conflict refuses the whole batch before anything is stored.
        fresh = pb.TaskSpec(queue="q", handler="h", idempotency_key="fresh")
        code, details, _ = sync.call("SubmitTasks", pb.SubmitTasksRequest(tasks=[fresh, other]))
        assert code == grpc.StatusCode.ALREADY_EXISTS and details.startswith("tasks[1].")
        twice = pb.TaskSpec(queue="q", handler="other", idempotency_key="fresh")
        code, details, _ = sync.call("SubmitTasks", pb.SubmitTasksRequest(tasks=[fresh, twice]))
        assert code == grpc.StatusCode.ALREADY_EXISTS and "twice in this request" in details
        listed = sync.call("ListTasks", pb.ListTasksRequest(queue="q"))[2]
        assert [t.idempotency_key for t in listed.tasks] == ["k"]

    await run_in_thread(server, body)


async def test_a_trailing_newline_does_not_slip_through_name_patterns(server: ApiServer) -> None:
    def body(sync: Sync) -> None:
        task = pb.TaskSpec(queue="q", handler="h")
        schedule = pb.ScheduleSpec(name="nightly\n", cron="@daily", task=task)
        code, details, _ = sync.call("PutSchedule", pb.PutScheduleRequest(schedule=schedule))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("schedule.name")
        step = pb.DagStep(name="a\n", task=pb.TaskSpec(handler="h"))
        dag = pb.DagSpec(queue="etl", steps=[step])
        code, details, _ = sync.call("SubmitDag", pb.SubmitDagRequest(dag=dag))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "steps[0]" in details
        code, details, _ = sync.call(
            "SubmitTask", pb.SubmitTaskRequest(task=pb.TaskSpec(queue="q\n", handler="h"))
        )
        assert code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("task.queue")

    await run_in_thread(server, body)
