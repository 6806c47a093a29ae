"""An in-memory stand-in for the TaskFlow API server, for testing clients without the engine.

It implements every RPC of ``taskflow.v1.TaskService`` over a dict, records each call with its
metadata, and lets a test inject failures. Handlers decide what happens on submit:

- ``echo``: the task succeeds at once; its result is its payload.
- ``fail``: the task fails at once (error ``boom``) and is dead-lettered.
- anything else: the task stays ``queued`` (or ``scheduled`` when delayed) until the test
  calls ``FakeTaskService.set_state``.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import itertools
import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import grpc
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from taskflow_client.v1 import tasks_pb2 as pb
from taskflow_client.v1 import tasks_pb2_grpc as pb_grpc

TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
"""What the real API server accepts and sends."""

R = TypeVar("R")


@dataclass(frozen=True)
class RecordedCall:
    """One call the fake received."""

    method: str
    request: Message
    metadata: tuple[tuple[str, str], ...]
    time_remaining: float | None
    """Seconds left before the call's deadline when it arrived (``None``: no deadline)."""

    def header(self, key: str) -> str | None:
        return next((v for k, v in self.metadata if k == key), None)


def _now() -> Timestamp:
    ts = Timestamp()
    ts.GetCurrentTime()
    return ts


class FakeTaskService(pb_grpc.TaskServiceServicer):
    """The servicer; thread-safe, shared by the server's worker threads and the test."""

    def __init__(self, required_token: str | None = None) -> None:
        self.required_token = required_token
        self._cond = threading.Condition()
        self._tasks: dict[str, pb.Task] = {}
        self._versions: dict[str, int] = {}
        self._keys: dict[tuple[str, str], str] = {}
        self._ids = itertools.count(1)
        self._failures: dict[str, collections.deque[tuple[grpc.StatusCode, str]]] = (
            collections.defaultdict(collections.deque)
        )
        self._lost_replies: collections.Counter[str] = collections.Counter()
        self._stalls: dict[str, float] = {}
        self._watch_drops = 0
        self.calls: list[RecordedCall] = []

    # -- test controls ------------------------------------------------------------------

    def fail_next(
        self, method: str, code: grpc.StatusCode, details: str = "injected", times: int = 1
    ) -> None:
        """Make the next ``times`` calls of ``method`` fail with ``code``."""
        with self._cond:
            self._failures[method].extend([(code, details)] * times)

    def stall(self, method: str, seconds: float) -> None:
        """Make every call of ``method`` hang for ``seconds`` (or until its deadline) first."""
        with self._cond:
            self._stalls[method] = seconds

    def lose_next_replies(self, method: str, times: int = 1) -> None:
        """Make the next ``times`` calls of ``method`` do their work, then fail with
        UNAVAILABLE as if the connection broke before the reply (the ambiguous failure)."""
        with self._cond:
            self._lost_replies[method] += times

    def drop_watches_after_first_snapshot(self, times: int) -> None:
        """Make the next ``times`` WatchTask streams end with UNAVAILABLE after one snapshot."""
        with self._cond:
            self._watch_drops += times

    def set_state(self, task_id: str, state: str, result: object = None, error: str = "") -> None:
        """Move a task to ``state`` (watchers see the change)."""
        with self._cond:
            task = self._tasks[task_id]
            task.state = state
            if result is not None:
                task.result_json = json.dumps(result)
            task.error = error
            if state == "running":
                task.started_at.CopyFrom(_now())
                task.attempts += 1
            if state in TERMINAL:
                task.finished_at.CopyFrom(_now())
            self._touch(task)

    def calls_of(self, method: str) -> list[RecordedCall]:
        with self._cond:
            return [c for c in self.calls if c.method == method]

    def wait_for_calls(self, method: str, count: int, timeout: float = 10.0) -> None:
        """Block until ``method`` was called ``count`` times; AssertionError after timeout."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._calls_of(method)) >= count, timeout):
                raise AssertionError(f"{method} was not called {count} times within {timeout}s")

    def task(self, task_id: str) -> pb.Task:
        with self._cond:
            copy = pb.Task()
            copy.CopyFrom(self._tasks[task_id])
            return copy

    # -- helpers ------------------------------------------------------------------------

    def _calls_of(self, method: str) -> list[RecordedCall]:
        return [c for c in self.calls if c.method == method]

    def _changed(self, task_id: str, seen: int) -> bool:
        return self._versions[task_id] != seen

    def _touch(self, task: pb.Task) -> None:
        task.updated_at.CopyFrom(_now())
        self._versions[task.id] += 1
        self._cond.notify_all()

    def _enter(self, method: str, request: Message, context: grpc.ServicerContext) -> None:
        metadata = tuple((k, str(v)) for k, v in context.invocation_metadata())
        remaining = context.time_remaining()
        with self._cond:
            self.calls.append(RecordedCall(method, request, metadata, remaining))
            self._cond.notify_all()
            failure = self._failures[method].popleft() if self._failures[method] else None
            stall = self._stalls.get(method, 0.0)
        until = time.monotonic() + stall
        while context.is_active() and time.monotonic() < until:
            time.sleep(0.01)
        if failure is not None:
            context.abort(*failure)
        expected = f"Bearer {self.required_token}"
        if self.required_token is not None and dict(metadata).get("authorization") != expected:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong token")

    def _reply(self, method: str, reply: R, context: grpc.ServicerContext) -> R:
        """``reply``, unless the test asked for this reply to be lost."""
        with self._cond:
            lost = self._lost_replies[method] > 0
            if lost:
                self._lost_replies[method] -= 1
        if lost:
            context.abort(grpc.StatusCode.UNAVAILABLE, "connection reset before the reply")
        return reply

    def count_tasks(self) -> int:
        with self._cond:
            return len(self._tasks)

    def _get(self, task_id: str, context: grpc.ServicerContext) -> pb.Task:
        task = self._tasks.get(task_id)
        if task is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"task {task_id} not found")
        return task

    @staticmethod
    def _problem(spec: pb.TaskSpec) -> str | None:
        if not spec.queue:
            return "queue: required"
        if not spec.handler:
            return "handler: required"
        if spec.payload_json:
            try:
                json.loads(spec.payload_json)
            except ValueError:
                return "payload: not valid JSON"
        if spec.concurrency_key and spec.concurrency_limit <= 0:
            return "concurrency_limit: required > 0 when concurrency_key is set"
        return None

    def _create(self, spec: pb.TaskSpec) -> pb.SubmitTaskResponse:
        namespace = spec.namespace or "default"
        if spec.idempotency_key and (namespace, spec.idempotency_key) in self._keys:
            existing = self._keys[(namespace, spec.idempotency_key)]
            return pb.SubmitTaskResponse(task_id=existing, created=False)
        task_id = f"t-{next(self._ids):04d}"
        now = _now()
        task = pb.Task(
            id=task_id,
            namespace=namespace,
            queue=spec.queue,
            handler=spec.handler,
            state="queued",
            payload_json=spec.payload_json,
            priority=spec.priority,
            max_retries=spec.max_retries if spec.HasField("max_retries") else 3,
            timeout_seconds=spec.timeout_seconds,
            idempotency_key=spec.idempotency_key,
            concurrency_key=spec.concurrency_key,
            labels=dict(spec.labels),
        )
        task.created_at.CopyFrom(now)
        task.updated_at.CopyFrom(now)
        if spec.HasField("run_at"):
            task.run_at.CopyFrom(spec.run_at)
            task.state = "scheduled"
        elif spec.delay_seconds > 0:
            task.run_at.FromNanoseconds(now.ToNanoseconds() + int(spec.delay_seconds * 1e9))
            task.state = "scheduled"
        if spec.handler == "echo":
            task.state = "succeeded"
            task.result_json = spec.payload_json or "null"
            task.attempts = 1
        elif spec.handler == "fail":
            task.state = "failed"
            task.error = "boom"
            task.traceback = "Traceback (most recent call last):\nRuntimeError: boom\n"
            task.attempts = 1
        if task.state in TERMINAL:
            task.started_at.CopyFrom(now)
            task.finished_at.CopyFrom(now)
            attempt = task.attempt_history.add(
                number=1, worker="fake-worker", outcome=task.state, error=task.error
            )
            attempt.started_at.CopyFrom(now)
            attempt.finished_at.CopyFrom(now)
        self._tasks[task_id] = task
        self._versions[task_id] = 0
        if spec.idempotency_key:
            self._keys[(namespace, spec.idempotency_key)] = task_id
        return pb.SubmitTaskResponse(task_id=task_id, created=True)

    @staticmethod
    def _page(tasks: list[pb.Task], size: int, token: str) -> pb.ListTasksResponse:
        start = int(token or 0)
        size = size or 100
        end = start + size
        return pb.ListTasksResponse(
            tasks=tasks[start:end], next_page_token=str(end) if end < len(tasks) else ""
        )

    # -- RPCs ---------------------------------------------------------------------------

    def SubmitTask(
        self, request: pb.SubmitTaskRequest, context: grpc.ServicerContext
    ) -> pb.SubmitTaskResponse:
        self._enter("SubmitTask", request, context)
        problem = self._problem(request.task)
        if problem:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, problem)
        with self._cond:
            created = self._create(request.task)
        return self._reply("SubmitTask", created, context)

    def SubmitTasks(
        self, request: pb.SubmitTasksRequest, context: grpc.ServicerContext
    ) -> pb.SubmitTasksResponse:
        self._enter("SubmitTasks", request, context)
        for index, spec in enumerate(request.tasks):
            problem = self._problem(spec)
            if problem:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"tasks[{index}].{problem}")
        with self._cond:
            created = pb.SubmitTasksResponse(results=[self._create(s) for s in request.tasks])
        return self._reply("SubmitTasks", created, context)

    def GetTask(self, request: pb.GetTaskRequest, context: grpc.ServicerContext) -> pb.Task:
        self._enter("GetTask", request, context)
        with self._cond:
            copy = pb.Task()
            copy.CopyFrom(self._get(request.task_id, context))
            return copy

    def WatchTask(
        self, request: pb.WatchTaskRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.Task]:
        self._enter("WatchTask", request, context)
        seen = -1
        while context.is_active():
            with self._cond:
                task = self._get(request.task_id, context)
                self._cond.wait_for(functools.partial(self._changed, request.task_id, seen), 0.05)
                if self._versions[request.task_id] == seen:
                    continue
                seen = self._versions[request.task_id]
                snapshot = pb.Task()
                snapshot.CopyFrom(task)
                snapshot.ClearField("attempt_history")
                drop = self._watch_drops > 0
                if drop:
                    self._watch_drops -= 1
            yield snapshot
            if snapshot.state in TERMINAL:
                return
            if drop:
                context.abort(grpc.StatusCode.UNAVAILABLE, "connection dropped")

    def CancelTask(
        self, request: pb.CancelTaskRequest, context: grpc.ServicerContext
    ) -> pb.CancelTaskResponse:
        self._enter("CancelTask", request, context)
        with self._cond:
            task = self._get(request.task_id, context)
            if task.state not in TERMINAL:
                task.state = "cancelled"
                task.finished_at.CopyFrom(_now())
                self._touch(task)
            copy = pb.Task()
            copy.CopyFrom(task)
        return self._reply("CancelTask", pb.CancelTaskResponse(task=copy), context)

    def ListTasks(
        self, request: pb.ListTasksRequest, context: grpc.ServicerContext
    ) -> pb.ListTasksResponse:
        self._enter("ListTasks", request, context)
        with self._cond:
            tasks = [
                t
                for t in self._tasks.values()
                if t.namespace == (request.namespace or "default")
                and (not request.queue or t.queue == request.queue)
                and (not request.states or t.state in request.states)
            ]
            return self._page(tasks, request.page_size, request.page_token)

    def _stats(self, namespace: str, queue: str) -> pb.QueueStats:
        counts = collections.Counter(
            t.state for t in self._tasks.values() if (t.namespace, t.queue) == (namespace, queue)
        )
        return pb.QueueStats(
            namespace=namespace,
            queue=queue,
            ready=counts["queued"],
            scheduled=counts["scheduled"] + counts["retrying"],
            running=counts["running"],
            succeeded=counts["succeeded"],
            failed=counts["failed"],
            cancelled=counts["cancelled"],
            dead_letters=counts["failed"],
        )

    def GetQueueStats(
        self, request: pb.GetQueueStatsRequest, context: grpc.ServicerContext
    ) -> pb.QueueStats:
        self._enter("GetQueueStats", request, context)
        with self._cond:
            return self._stats(request.namespace or "default", request.queue)

    def ListQueues(
        self, request: pb.ListQueuesRequest, context: grpc.ServicerContext
    ) -> pb.ListQueuesResponse:
        self._enter("ListQueues", request, context)
        with self._cond:
            keys = sorted(
                {
                    (t.namespace, t.queue)
                    for t in self._tasks.values()
                    if not request.namespace or t.namespace == request.namespace
                }
            )
            return pb.ListQueuesResponse(queues=[self._stats(ns, q) for ns, q in keys])

    def ListDeadLetters(
        self, request: pb.ListDeadLettersRequest, context: grpc.ServicerContext
    ) -> pb.ListTasksResponse:
        self._enter("ListDeadLetters", request, context)
        with self._cond:
            tasks = [
                t
                for t in self._tasks.values()
                if (t.namespace, t.queue) == (request.namespace or "default", request.queue)
                and t.state == "failed"
            ]
            return self._page(tasks, request.page_size, request.page_token)

    def ReplayDeadLetters(
        self, request: pb.ReplayDeadLettersRequest, context: grpc.ServicerContext
    ) -> pb.ReplayDeadLettersResponse:
        self._enter("ReplayDeadLetters", request, context)
        with self._cond:
            replayed = []
            for task in self._tasks.values():
                if (
                    (task.namespace, task.queue) == (request.namespace or "default", request.queue)
                    and task.state == "failed"
                    and (not request.task_ids or task.id in request.task_ids)
                ):
                    task.state = "queued"
                    task.attempts = 0
                    task.error = ""
                    task.ClearField("finished_at")
                    self._touch(task)
                    replayed.append(task.id)
            return pb.ReplayDeadLettersResponse(task_ids=replayed)


def _serve(service: FakeTaskService, port: int) -> tuple[grpc.Server, int]:
    server = grpc.server(
        ThreadPoolExecutor(max_workers=16),
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ],
    )
    pb_grpc.add_TaskServiceServicer_to_server(service, server)
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    if not bound:
        raise RuntimeError(f"the fake server cannot listen on 127.0.0.1:{port}")
    server.start()
    return server, bound


class FakeServer:
    """A running fake: its servicer (its tasks outlive a restart, as a database's would) and
    the address clients connect to."""

    def __init__(self, service: FakeTaskService) -> None:
        self.service = service
        self._server: grpc.Server | None
        self._server, self.port = _serve(service, 0)
        self.target = f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        """Stop serving at once: calls in flight fail UNAVAILABLE, new ones cannot connect."""
        if self._server is not None:
            self._server.stop(grace=None).wait(timeout=5)
            self._server = None

    def start(self) -> None:
        """Serve again on the same port."""
        if self._server is None:
            self._server, _ = _serve(self.service, self.port)


@contextlib.contextmanager
def running_fake_server(required_token: str | None = None) -> Iterator[FakeServer]:
    """Serve a fresh ``FakeTaskService`` on a free local port for the duration of the block."""
    server = FakeServer(FakeTaskService(required_token))
    try:
        yield server
    finally:
        server.stop()
