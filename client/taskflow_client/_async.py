"""The asyncio client: the methods of ``Client``, as coroutines."""

from __future__ import annotations

import asyncio
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Mapping,
    Sequence,
)
from datetime import datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import grpc
import grpc.aio

from . import _requests
from ._config import Settings
from ._convert import queue_stats_from_proto, schedule_from_proto, schedule_spec, task_from_proto
from ._errors import TaskFlowError, from_rpc_error, status_of
from ._models import (
    ConcurrencyPolicy,
    QueueStats,
    RetryPolicy,
    Schedule,
    Task,
    TaskRequest,
    TaskState,
)
from ._retry import RETRY_READ, RETRY_WRITE
from ._watching import WatchPlan
from .v1 import tasks_pb2 as pb
from .v1.tasks_pb2_grpc import TaskServiceStub

if TYPE_CHECKING:
    from .v1.tasks_pb2_grpc import TaskServiceAsyncStub

__all__ = ["AsyncClient"]

_Req = TypeVar("_Req")
_Resp = TypeVar("_Resp")


class AsyncClient:
    """A client of the TaskFlow API for asyncio; arguments and methods are those of ``Client``.

    The channel opens on the first call, inside the running event loop. Use it as an async
    context manager or await ``close()``.
    """

    def __init__(
        self,
        target: str | None = None,
        token: str | None = None,
        namespace: str = "default",
        *,
        timeout: float | None = 30.0,
        retries: int = 5,
        credentials: grpc.ChannelCredentials | None = None,
    ) -> None:
        self._settings = Settings.resolve(target, token, namespace, timeout, retries)
        self._credentials = credentials
        self._channel: grpc.aio.Channel | None = None
        self._stub_: TaskServiceAsyncStub | None = None

    @property
    def target(self) -> str:
        """The address the client connects to."""
        return self._settings.target

    @property
    def namespace(self) -> str:
        """The namespace of calls that do not name one."""
        return self._settings.namespace

    @property
    def _stub(self) -> TaskServiceAsyncStub:
        if self._stub_ is None:
            options = self._settings.channel_options
            if self._credentials is None:
                self._channel = grpc.aio.insecure_channel(self._settings.target, options=options)
            else:
                self._channel = grpc.aio.secure_channel(
                    self._settings.target, self._credentials, options=options
                )
            self._stub_ = TaskServiceStub(self._channel)
        return self._stub_

    async def close(self) -> None:
        """Close the channel; calls in flight are cancelled."""
        channel, self._channel, self._stub_ = self._channel, None, None
        if channel is not None:
            await channel.close(None)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"AsyncClient(target={self.target!r}, namespace={self.namespace!r})"

    async def _call(
        self,
        rpc: Callable[..., Awaitable[_Resp]],
        request: _Req,
        retry_on: frozenset[grpc.StatusCode],
    ) -> _Resp:
        backoff = self._settings.backoff
        for attempt in range(1, backoff.attempts + 1):
            try:
                return await rpc(
                    request, timeout=self._settings.timeout, metadata=self._settings.metadata
                )
            except grpc.RpcError as exc:
                code, _ = status_of(exc)
                if code not in retry_on or attempt == backoff.attempts:
                    raise from_rpc_error(exc) from exc
            await asyncio.sleep(backoff.delay(attempt))
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def submit(
        self,
        queue: str,
        handler: str,
        payload: Any = None,
        *,
        priority: int = 0,
        delay: float | timedelta | None = None,
        run_at: datetime | None = None,
        max_retries: int | None = None,
        timeout: float | timedelta | None = None,
        idempotency_key: str | None = None,
        concurrency_key: str | None = None,
        concurrency_limit: int | None = None,
        retry: RetryPolicy | None = None,
        labels: Mapping[str, str] | None = None,
        namespace: str | None = None,
    ) -> str:
        """Submit one task and return its id (see ``Client.submit``).

        When no ``idempotency_key`` is given the client generates a random one, so that
        repeating the call after a lost connection never creates the task twice.
        """
        request = TaskRequest(
            queue=queue,
            handler=handler,
            payload=payload,
            priority=priority,
            delay=delay,
            run_at=run_at,
            max_retries=max_retries,
            timeout=timeout,
            idempotency_key=idempotency_key,
            concurrency_key=concurrency_key,
            concurrency_limit=concurrency_limit,
            retry=retry,
            labels=labels,
            namespace=namespace,
        )
        message = _requests.submit_request(request, self.namespace)
        response = await self._call(self._stub.SubmitTask, message, RETRY_WRITE)
        return response.task_id

    async def submit_many(self, items: Iterable[TaskRequest | Mapping[str, Any]]) -> list[str]:
        """Submit several tasks in one call and one transaction (see ``Client.submit_many``).

        Items without an idempotency key get a generated one, as with ``submit``.
        """
        message = _requests.submit_many_request(items, self.namespace)
        if not message.tasks:
            return []
        response = await self._call(self._stub.SubmitTasks, message, RETRY_WRITE)
        return [result.task_id for result in response.results]

    async def get(self, task_id: str) -> Task:
        """The task with this id, with its attempt history."""
        request = pb.GetTaskRequest(task_id=task_id)
        return task_from_proto(await self._call(self._stub.GetTask, request, RETRY_READ))

    async def cancel(self, task_id: str) -> Task:
        """Cancel the task (a running one is stopped by its worker) and return its state."""
        request = pb.CancelTaskRequest(task_id=task_id)
        response = await self._call(self._stub.CancelTask, request, RETRY_WRITE)
        return task_from_proto(response.task)

    def watch(self, task_id: str) -> AsyncIterator[Task]:
        """Snapshots of the task: its current state, then each change, ending once terminal.

        A dropped stream is reopened (the snapshot after reopening may repeat the last one).
        """
        return self._watch(task_id, None)

    async def wait(self, task_id: str, timeout: float | None = None) -> Task:
        """Wait until the task is terminal and return it.

        Raises ``TaskFlowTimeoutError`` when ``timeout`` seconds pass first (``None``: wait
        for as long as it takes).
        """
        watch = self._watch(task_id, timeout)
        try:
            async for task in watch:
                if task.done:
                    return task
        finally:
            await watch.aclose()
        raise TaskFlowError(f"the watch of task {task_id} ended before the task finished")

    async def _watch(self, task_id: str, timeout: float | None) -> AsyncGenerator[Task, None]:
        request = pb.WatchTaskRequest(task_id=task_id)
        plan = WatchPlan(task_id, timeout, self._settings.backoff)
        while True:
            call = self._stub.WatchTask(
                request, timeout=plan.remaining(), metadata=self._settings.metadata
            )
            error: grpc.RpcError | None = None
            try:
                async for message in call:
                    plan.received()
                    task = task_from_proto(message)
                    yield task
                    if task.done:
                        return
            except grpc.RpcError as exc:
                error = exc
            finally:
                call.cancel()
            await asyncio.sleep(plan.pause_after_drop(error))

    async def list_tasks_page(
        self,
        queue: str | None = None,
        states: Iterable[TaskState | str] | None = None,
        page_size: int = 100,
        page_token: str | None = None,
        *,
        namespace: str | None = None,
    ) -> tuple[list[Task], str | None]:
        """One page of tasks and the token of the next page (``None``: last)."""
        request = _requests.list_tasks_request(
            namespace or self.namespace, queue, states, page_size, page_token
        )
        response = await self._call(self._stub.ListTasks, request, RETRY_READ)
        return [task_from_proto(t) for t in response.tasks], response.next_page_token or None

    async def list_tasks(
        self,
        queue: str | None = None,
        states: Iterable[TaskState | str] | None = None,
        page_size: int = 100,
        *,
        namespace: str | None = None,
    ) -> AsyncIterator[Task]:
        """Every matching task, fetched a page at a time as the iterator advances."""
        states = None if states is None else list(states)
        token: str | None = None
        while True:
            tasks, token = await self.list_tasks_page(
                queue, states, page_size, token, namespace=namespace
            )
            for task in tasks:
                yield task
            if token is None:
                return

    async def queue_stats(self, queue: str, namespace: str | None = None) -> QueueStats:
        """The counters of one queue."""
        request = pb.GetQueueStatsRequest(namespace=namespace or self.namespace, queue=queue)
        response = await self._call(self._stub.GetQueueStats, request, RETRY_READ)
        return queue_stats_from_proto(response)

    async def queues(self, namespace: str | None = None) -> list[QueueStats]:
        """The counters of every queue of the namespace (``namespace=""``: of every one)."""
        request = pb.ListQueuesRequest(namespace=self.namespace if namespace is None else namespace)
        response = await self._call(self._stub.ListQueues, request, RETRY_READ)
        return [queue_stats_from_proto(q) for q in response.queues]

    async def dead_letters(
        self,
        queue: str,
        *,
        namespace: str | None = None,
        page_size: int = 100,
        limit: int | None = None,
    ) -> list[Task]:
        """Tasks of the queue that exhausted their retries (at most ``limit`` of them)."""
        tasks: list[Task] = []
        token: str | None = None
        while limit is None or len(tasks) < limit:
            request = _requests.list_dead_letters_request(
                namespace or self.namespace, queue, page_size, token
            )
            response = await self._call(self._stub.ListDeadLetters, request, RETRY_READ)
            tasks.extend(task_from_proto(t) for t in response.tasks)
            token = response.next_page_token or None
            if token is None:
                break
        return tasks if limit is None else tasks[:limit]

    async def replay(
        self,
        queue: str,
        task_ids: Sequence[str] | None = None,
        *,
        namespace: str | None = None,
    ) -> list[str]:
        """Queue dead-lettered tasks again with fresh attempt counters; return their ids.

        ``task_ids=None`` replays every dead-lettered task of the queue.
        """
        request = _requests.replay_request(namespace or self.namespace, queue, task_ids)
        response = await self._call(self._stub.ReplayDeadLetters, request, RETRY_WRITE)
        return list(response.task_ids)

    # -- schedules ----------------------------------------------------------------------------

    async def put_schedule(
        self,
        name: str,
        cron: str,
        task: TaskRequest | Mapping[str, Any],
        *,
        timezone: str = "UTC",
        concurrency_policy: ConcurrencyPolicy | str = ConcurrencyPolicy.ALLOW,
        suspend: bool = False,
        starting_deadline_seconds: int | None = None,
        namespace: str | None = None,
    ) -> Schedule:
        """Create the cron schedule ``name``, or update it, and return it.

        ``cron`` has five fields (``"0 3 * * *"``) or is a macro such as ``"@hourly"``, read in
        ``timezone`` (an IANA name). Each tick submits ``task`` (a ``TaskRequest`` or a dict of
        its fields, without ``idempotency_key``, ``delay`` or ``run_at``: every tick is keyed
        by the schedule and the tick). ``concurrency_policy`` says what a tick does while the
        previous fire's task is unfinished; a tick later than ``starting_deadline_seconds`` is
        skipped. Changing ``cron`` or ``timezone`` starts the ticks anew from now.
        """
        request = pb.PutScheduleRequest(
            schedule=schedule_spec(
                namespace or self.namespace,
                name,
                cron,
                task,
                timezone=timezone,
                concurrency_policy=concurrency_policy,
                suspend=suspend,
                starting_deadline_seconds=starting_deadline_seconds,
            )
        )
        response = await self._call(self._stub.PutSchedule, request, RETRY_WRITE)
        return schedule_from_proto(response.schedule)

    async def get_schedule(self, name: str, *, namespace: str | None = None) -> Schedule:
        """The schedule ``name``, with its next and last fire times and counts."""
        request = pb.GetScheduleRequest(namespace=namespace or self.namespace, name=name)
        return schedule_from_proto(await self._call(self._stub.GetSchedule, request, RETRY_READ))

    async def list_schedules(self, namespace: str | None = None) -> list[Schedule]:
        """Every schedule of the namespace (``namespace=""``: of every one), by name."""
        schedules: list[Schedule] = []
        token: str | None = None
        while True:
            request = _requests.list_schedules_request(
                self.namespace if namespace is None else namespace, 500, token
            )
            response = await self._call(self._stub.ListSchedules, request, RETRY_READ)
            schedules.extend(schedule_from_proto(s) for s in response.schedules)
            token = response.next_page_token or None
            if token is None:
                return schedules

    async def delete_schedule(self, name: str, *, namespace: str | None = None) -> bool:
        """Delete the schedule; ``False`` when there was none. Fired tasks are kept."""
        request = pb.DeleteScheduleRequest(namespace=namespace or self.namespace, name=name)
        response = await self._call(self._stub.DeleteSchedule, request, RETRY_WRITE)
        return response.deleted

    async def suspend_schedule(self, name: str, *, namespace: str | None = None) -> Schedule:
        """Stop the schedule from firing until ``resume_schedule``."""
        return await self._set_suspended(name, namespace, True)

    async def resume_schedule(self, name: str, *, namespace: str | None = None) -> Schedule:
        """Let a suspended schedule fire again: the latest tick it missed fires once, unless
        it is older than its ``starting_deadline_seconds``."""
        return await self._set_suspended(name, namespace, False)

    async def _set_suspended(self, name: str, namespace: str | None, suspend: bool) -> Schedule:
        request = pb.SetScheduleSuspendedRequest(
            namespace=namespace or self.namespace, name=name, suspend=suspend
        )
        return schedule_from_proto(
            await self._call(self._stub.SetScheduleSuspended, request, RETRY_WRITE)
        )
