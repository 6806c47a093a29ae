"""What ``Client`` and ``AsyncClient`` share: settings, the calls each method makes and how
their replies are decoded. The two classes only carry the calls out, blocking or awaiting.

Every method is described here as a ``Call`` (which RPC, which request, which codes allow a
repeat, how to decode the reply), or, when it takes several round trips, as a ``Plan``: a
generator that yields calls and receives their decoded replies. No I/O happens here.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import grpc
from google.protobuf.message import Message

from . import _requests
from ._config import DEFAULT_TIMEOUT, Settings
from ._convert import queue_stats_from_proto, task_from_proto
from ._errors import InvalidArgumentError, TaskFlowError
from ._models import QueueStats, Schedule, Task, TaskRequest, TaskState
from ._retry import RETRY_READ, RETRY_WRITE
from ._schedules import schedule_from_proto
from ._tls import PemSource, channel_credentials
from ._workflows import (
    DagRun,
    DagRunState,
    Flow,
    Step,
    dag_request,
    dag_run_from_proto,
    list_dags_request,
)
from .v1 import tasks_pb2 as pb

__all__ = ["BaseClient", "Call", "Page", "Plan", "Watched"]

T = TypeVar("T")
C = TypeVar("C")
Page = tuple[list[Task], str | None]
"""One page of tasks and the token of the next one (``None``: it was the last)."""


@dataclass(frozen=True)
class Call(Generic[T]):
    """One RPC to make: the stub method's name, its request, the status codes after which the
    same request may be sent again, and the decoding of the reply."""

    method: str
    request: Message
    retry_on: frozenset[grpc.StatusCode]
    decode: Callable[[Any], T]


Plan = Generator[Call[Any], Any, T]
"""A method made of several calls: yields each call, receives its decoded reply, returns the
method's result."""

W = TypeVar("W")


@dataclass(frozen=True)
class Watched(Generic[W]):
    """A server stream to follow until ``done``: a task or a DAG run (``what`` names it)."""

    what: str
    method: str
    request: Message
    decode: Callable[[Any], W]
    done: Callable[[W], bool]


def _task_ids(response: pb.SubmitTasksResponse) -> list[str]:
    return [result.task_id for result in response.results]


def _page(response: pb.ListTasksResponse) -> Page:
    return [task_from_proto(t) for t in response.tasks], response.next_page_token or None


def _queues(response: pb.ListQueuesResponse) -> list[QueueStats]:
    return [queue_stats_from_proto(q) for q in response.queues]


def _runs(response: pb.ListDagRunsResponse) -> tuple[list[DagRun], str | None]:
    return [dag_run_from_proto(r) for r in response.runs], response.next_page_token or None


def _schedules(response: pb.ListSchedulesResponse) -> tuple[list[Schedule], str | None]:
    return [schedule_from_proto(s) for s in response.schedules], response.next_page_token or None


class BaseClient:
    """Settings and the calls of every method; subclasses run them. Constructing a client
    makes no connection: the channel opens on the first call."""

    def __init__(
        self,
        target: str | None = None,
        token: str | None = None,
        namespace: str = "default",
        *,
        timeout: float | None = DEFAULT_TIMEOUT,
        retry_budget: float | None = None,
        retries: int | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        tls: bool | None = None,
        ca: PemSource | None = None,
        cert: PemSource | None = None,
        key: PemSource | None = None,
    ) -> None:
        self._settings = Settings.resolve(target, token, namespace, timeout, retry_budget, retries)
        if credentials is not None and any(v is not None for v in (tls, ca, cert, key)):
            raise InvalidArgumentError("credentials: give either credentials or tls/ca/cert/key")
        self._credentials = credentials or channel_credentials(tls, ca, cert, key)
        self._closed = False
        self._lock = threading.Lock()
        """Guards the opening and closing of the channel."""

    @property
    def target(self) -> str:
        """The address the client connects to."""
        return self._settings.target

    @property
    def namespace(self) -> str:
        """The namespace of calls that do not name one."""
        return self._settings.namespace

    @property
    def timeout(self) -> float | None:
        """Seconds one call may take, its retries included (``None``: no deadline)."""
        return self._settings.timeout

    @property
    def retry_budget(self) -> float:
        """Seconds after a call begins during which a failed attempt is repeated."""
        return self._settings.retry.budget

    def _open_channel(self, insecure: Callable[..., C], secure: Callable[..., C]) -> C:
        """A channel made by ``insecure(target, options=...)``, or by ``secure(target,
        credentials, options=...)`` when the client was given credentials."""
        options = self._settings.channel_options
        if self._credentials is None:
            return insecure(self.target, options=options)
        return secure(self.target, self._credentials, options=options)

    def _ensure_open(self) -> None:
        """Raise ``TaskFlowError`` once ``close()`` was called: no call is made (or repeated)
        on a closed client."""
        if self._closed:
            raise TaskFlowError(f"this {type(self).__name__} is closed", grpc.StatusCode.CANCELLED)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(target={self.target!r}, namespace={self.namespace!r})"

    # -- the calls of each method ------------------------------------------------------------

    def _submit_call(self, request: TaskRequest) -> Call[str]:
        message = _requests.submit_request(request, self.namespace)
        return Call("SubmitTask", message, RETRY_WRITE, lambda r: r.task_id)

    def _submit_many_call(
        self, items: Iterable[TaskRequest | Mapping[str, Any]]
    ) -> Call[list[str]] | None:
        """``None`` when there is nothing to submit (no call is made)."""
        message = _requests.submit_many_request(items, self.namespace)
        if not message.tasks:
            return None
        return Call("SubmitTasks", message, RETRY_WRITE, _task_ids)

    def _get_call(self, task_id: str) -> Call[Task]:
        return Call("GetTask", pb.GetTaskRequest(task_id=task_id), RETRY_READ, task_from_proto)

    def _cancel_call(self, task_id: str) -> Call[Task]:
        request = pb.CancelTaskRequest(task_id=task_id)
        return Call("CancelTask", request, RETRY_WRITE, lambda r: task_from_proto(r.task))

    def _list_tasks_page_call(
        self,
        queue: str | None,
        states: Iterable[TaskState | str] | None,
        page_size: int,
        page_token: str | None,
        namespace: str | None,
    ) -> Call[Page]:
        request = _requests.list_tasks_request(
            namespace or self.namespace, queue, states, page_size, page_token
        )
        return Call("ListTasks", request, RETRY_READ, _page)

    def _queue_stats_call(self, queue: str, namespace: str | None) -> Call[QueueStats]:
        request = pb.GetQueueStatsRequest(namespace=namespace or self.namespace, queue=queue)
        return Call("GetQueueStats", request, RETRY_READ, queue_stats_from_proto)

    def _queues_call(self, namespace: str | None) -> Call[list[QueueStats]]:
        request = pb.ListQueuesRequest(namespace=self.namespace if namespace is None else namespace)
        return Call("ListQueues", request, RETRY_READ, _queues)

    def _dead_letters_plan(
        self, queue: str, namespace: str | None, page_size: int, limit: int | None
    ) -> Plan[list[Task]]:
        tasks: list[Task] = []
        token: str | None = None
        while limit is None or len(tasks) < limit:
            request = _requests.list_dead_letters_request(
                namespace or self.namespace, queue, page_size, token
            )
            page, token = yield Call("ListDeadLetters", request, RETRY_READ, _page)
            tasks.extend(page)
            if token is None:
                break
        return tasks if limit is None else tasks[:limit]

    def _replay_call(
        self, queue: str, task_ids: Sequence[str] | None, namespace: str | None
    ) -> Call[list[str]]:
        request = _requests.replay_request(namespace or self.namespace, queue, task_ids)
        return Call("ReplayDeadLetters", request, RETRY_WRITE, lambda r: list(r.task_ids))

    def _put_schedule_call(self, spec: pb.ScheduleSpec) -> Call[Schedule]:
        request = pb.PutScheduleRequest(schedule=spec)
        return Call("PutSchedule", request, RETRY_WRITE, lambda r: schedule_from_proto(r.schedule))

    def _get_schedule_call(self, name: str, namespace: str | None) -> Call[Schedule]:
        request = pb.GetScheduleRequest(namespace=namespace or self.namespace, name=name)
        return Call("GetSchedule", request, RETRY_READ, schedule_from_proto)

    def _list_schedules_plan(self, namespace: str | None) -> Plan[list[Schedule]]:
        schedules: list[Schedule] = []
        token: str | None = None
        while True:
            request = _requests.list_schedules_request(
                self.namespace if namespace is None else namespace, 500, token
            )
            page, token = yield Call("ListSchedules", request, RETRY_READ, _schedules)
            schedules.extend(page)
            if token is None:
                return schedules

    def _delete_schedule_call(self, name: str, namespace: str | None) -> Call[bool]:
        request = pb.DeleteScheduleRequest(namespace=namespace or self.namespace, name=name)
        return Call("DeleteSchedule", request, RETRY_WRITE, lambda r: bool(r.deleted))

    def _set_suspended_call(
        self, name: str, namespace: str | None, suspend: bool
    ) -> Call[Schedule]:
        request = pb.SetScheduleSuspendedRequest(
            namespace=namespace or self.namespace, name=name, suspend=suspend
        )
        return Call("SetScheduleSuspended", request, RETRY_WRITE, schedule_from_proto)

    # -- watches ------------------------------------------------------------------------------

    def _task_watch(self, task_id: str) -> Watched[Task]:
        return Watched(
            f"task {task_id}",
            "WatchTask",
            pb.WatchTaskRequest(task_id=task_id),
            task_from_proto,
            lambda t: t.done,
        )

    def _dag_watch(self, run_id: str) -> Watched[DagRun]:
        return Watched(
            f"DAG run {run_id}",
            "WatchDagRun",
            pb.WatchDagRunRequest(run_id=run_id),
            dag_run_from_proto,
            lambda r: r.done,
        )

    # -- DAG runs -----------------------------------------------------------------------------

    def _submit_dag_call(
        self,
        steps: Flow | Step | Iterable[Step | Mapping[str, Any]],
        queue: str,
        namespace: str | None,
        name: str | None,
        failure_policy: str,
        idempotency_key: str | None,
        labels: Mapping[str, str] | None,
    ) -> Call[str]:
        request = dag_request(
            steps,
            queue=queue,
            namespace=namespace or self.namespace,
            name=name,
            failure_policy=failure_policy,
            idempotency_key=idempotency_key,
            labels=labels,
        )
        return Call("SubmitDag", request, RETRY_WRITE, lambda r: r.run_id)

    def _get_dag_call(self, run_id: str, results: bool) -> Call[DagRun]:
        request = pb.GetDagRunRequest(run_id=run_id, include_results=results)
        return Call("GetDagRun", request, RETRY_READ, dag_run_from_proto)

    def _cancel_dag_call(self, run_id: str) -> Call[DagRun]:
        request = pb.CancelDagRunRequest(run_id=run_id)
        return Call("CancelDagRun", request, RETRY_WRITE, dag_run_from_proto)

    def _retry_dag_call(self, run_id: str) -> Call[DagRun]:
        request = pb.RetryDagRunRequest(run_id=run_id)
        return Call("RetryDagRun", request, RETRY_WRITE, dag_run_from_proto)

    def _list_dags_plan(
        self,
        states: Iterable[DagRunState | str] | None,
        namespace: str | None,
        limit: int | None,
    ) -> Plan[list[DagRun]]:
        runs: list[DagRun] = []
        token: str | None = None
        while limit is None or len(runs) < limit:
            request = list_dags_request(namespace or self.namespace, states, 500, token)
            page, token = yield Call("ListDagRuns", request, RETRY_READ, _runs)
            runs.extend(page)
            if token is None:
                break
        return runs if limit is None else runs[:limit]
