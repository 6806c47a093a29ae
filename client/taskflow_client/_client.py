"""The synchronous client."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Generator, Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, TypeVar

import grpc

from ._base import BaseClient, Call, Plan, W, Watched
from ._errors import TaskFlowError
from ._models import (
    ConcurrencyPolicy,
    QueueStats,
    RetryPolicy,
    Schedule,
    Task,
    TaskRequest,
    TaskState,
)
from ._schedules import DagTarget, schedule_spec
from ._tracing import traced
from ._watching import WatchPlan
from ._workflows import DagRun, DagRunState, Flow, Step
from .v1.tasks_pb2_grpc import TaskServiceStub

__all__ = ["Client"]

T = TypeVar("T")


class Client(BaseClient):
    """A blocking client of the TaskFlow API.

    ``target`` defaults to the environment variable ``TASKFLOW_API_ADDR``, else
    ``localhost:50051``; ``token`` defaults to ``TASKFLOW_API_TOKEN`` and is sent as
    ``authorization: Bearer <token>``. ``namespace`` applies to every call that does not name
    one. ``tls=True`` makes the channel use TLS (``ca``: a PEM CA bundle, else the system's;
    ``cert`` and ``key``: a client certificate for mutual TLS; each a path or PEM bytes,
    defaulting to ``TASKFLOW_API_TLS``, ``TASKFLOW_API_CA``, ``TASKFLOW_API_CERT`` and
    ``TASKFLOW_API_KEY``; giving ``ca``, ``cert`` or ``key`` implies TLS); ``credentials``
    (``grpc.ChannelCredentials``) replaces them all.

    ``timeout`` is the deadline of each call in seconds, its retries included (``None``: no
    deadline). A call that finds the server unavailable, or that a stopping server cancelled
    (reads: also one that missed its deadline), is repeated with exponential backoff and
    jitter for ``retry_budget`` seconds from its start (default ``TASKFLOW_RETRY_BUDGET``,
    else 30; ``0`` turns retrying off), in at most ``retries`` attempts when that is given.
    Submissions carry idempotency keys, so a repeated call never creates a task twice.

    The channel opens on the first call. Use the client as a context manager or call
    ``close()``. A client is safe to share between threads.
    """

    _channel: grpc.Channel | None = None
    _stub_: TaskServiceStub | None = None

    @property
    def _stub(self) -> TaskServiceStub:
        self._ensure_open()
        if self._stub_ is None:
            with self._lock:
                self._ensure_open()
                if self._stub_ is None:
                    self._channel = self._open_channel(grpc.insecure_channel, grpc.secure_channel)
                    self._stub_ = TaskServiceStub(self._channel)
        return self._stub_

    def close(self) -> None:
        """Close the channel; calls in flight are cancelled, later ones raise
        ``TaskFlowError``."""
        self._closed = True
        with self._lock:
            channel, self._channel, self._stub_ = self._channel, None, None
        if channel is not None:
            channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _run(self, call: Call[T]) -> T:
        attempts = self._settings.attempts(call.retry_on)
        with traced(call.method, call.request, self._settings.metadata) as metadata:
            while True:
                rpc = getattr(self._stub, call.method)
                try:
                    response = rpc(call.request, timeout=attempts.timeout(), metadata=metadata)
                except grpc.RpcError as exc:
                    pause = attempts.pause_after(exc)
                else:
                    return call.decode(response)
                time.sleep(pause)

    def _follow(self, plan: Plan[T]) -> T:
        try:
            call = next(plan)
            while True:
                call = plan.send(self._run(call))
        except StopIteration as done:
            result: T = done.value
            return result

    def submit(
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
        """Submit one task and return its id.

        ``payload`` is any JSON-serializable value. ``delay`` (seconds or timedelta) or
        ``run_at`` (timezone-aware) postpone the task; ``max_retries``, ``timeout`` and
        ``retry`` override the queue's defaults; ``concurrency_key`` with
        ``concurrency_limit`` caps how many tasks sharing the key run at once.

        With an ``idempotency_key``, a resubmission returns the id of the existing task. When
        none is given the client generates a random one, so that repeating the call after a
        lost connection never creates the task twice; the key is visible as
        ``Task.idempotency_key``.
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
        return self._run(self._submit_call(request))

    def submit_many(self, items: Iterable[TaskRequest | Mapping[str, Any]]) -> list[str]:
        """Submit several tasks in one call and one transaction; return their ids in order.

        Each item is a ``TaskRequest`` or a dict with its keys (``queue`` and ``handler`` at
        least). Either every task is accepted or none is. Items without an idempotency key get
        a generated one, as with ``submit``. Errors about one item name it as ``tasks[i]``.
        """
        call = self._submit_many_call(items)
        return [] if call is None else self._run(call)

    def get(self, task_id: str) -> Task:
        """The task with this id, with its attempt history."""
        return self._run(self._get_call(task_id))

    def cancel(self, task_id: str) -> Task:
        """Cancel the task (a running one is stopped by its worker) and return its state."""
        return self._run(self._cancel_call(task_id))

    def watch(self, task_id: str) -> Iterator[Task]:
        """Snapshots of the task: its current state, then each change, ending once terminal.

        A dropped stream is reopened (the snapshot after reopening may repeat the last one).
        """
        return self._watch(self._task_watch(task_id), None)

    def wait(self, task_id: str, timeout: float | None = None) -> Task:
        """Block until the task is terminal and return it.

        Raises ``TaskFlowTimeoutError`` when ``timeout`` seconds pass first (``None``: wait
        for as long as it takes).
        """
        return self._wait(self._task_watch(task_id), timeout)

    def _wait(self, watched: Watched[W], timeout: float | None) -> W:
        with contextlib.closing(self._watch(watched, timeout)) as watch:
            for item in watch:
                if watched.done(item):
                    return item
        raise TaskFlowError(f"the watch of {watched.what} ended before it finished")

    def _watch(self, watched: Watched[W], timeout: float | None) -> Generator[W, None, None]:
        plan = WatchPlan(watched.what, timeout, self._settings.retry)
        while True:
            stream = getattr(self._stub, watched.method)
            call = stream(
                watched.request, timeout=plan.remaining(), metadata=self._settings.metadata
            )
            error: grpc.RpcError | None = None
            try:
                for message in call:
                    plan.received()
                    item = watched.decode(message)
                    yield item
                    if watched.done(item):
                        return
            except grpc.RpcError as exc:
                error = exc
            finally:
                call.cancel()
            time.sleep(plan.pause_after_drop(error))

    def list_tasks_page(
        self,
        queue: str | None = None,
        states: Iterable[TaskState | str] | None = None,
        page_size: int = 100,
        page_token: str | None = None,
        *,
        namespace: str | None = None,
    ) -> tuple[list[Task], str | None]:
        """One page of tasks and the token of the next page (``None``: last).

        ``queue=None`` lists every queue of the namespace; ``states`` filters by state.
        """
        return self._run(
            self._list_tasks_page_call(queue, states, page_size, page_token, namespace)
        )

    def list_tasks(
        self,
        queue: str | None = None,
        states: Iterable[TaskState | str] | None = None,
        page_size: int = 100,
        *,
        namespace: str | None = None,
    ) -> Iterator[Task]:
        """Every matching task, fetched a page at a time as the iterator advances."""
        states = None if states is None else list(states)
        token: str | None = None
        while True:
            tasks, token = self.list_tasks_page(
                queue, states, page_size, token, namespace=namespace
            )
            yield from tasks
            if token is None:
                return

    def queue_stats(self, queue: str, namespace: str | None = None) -> QueueStats:
        """The counters of one queue."""
        return self._run(self._queue_stats_call(queue, namespace))

    def queues(self, namespace: str | None = None) -> list[QueueStats]:
        """The counters of every queue of the namespace (``namespace=""``: of every one)."""
        return self._run(self._queues_call(namespace))

    def dead_letters(
        self,
        queue: str,
        *,
        namespace: str | None = None,
        page_size: int = 100,
        limit: int | None = None,
    ) -> list[Task]:
        """Tasks of the queue that exhausted their retries (at most ``limit`` of them)."""
        return self._follow(self._dead_letters_plan(queue, namespace, page_size, limit))

    def replay(
        self,
        queue: str,
        task_ids: Sequence[str] | None = None,
        *,
        namespace: str | None = None,
    ) -> list[str]:
        """Queue dead-lettered tasks again with fresh attempt counters; return their ids.

        ``task_ids=None`` replays every dead-lettered task of the queue.
        """
        return self._run(self._replay_call(queue, task_ids, namespace))

    # -- schedules ----------------------------------------------------------------------------

    def put_schedule(
        self,
        name: str,
        cron: str,
        task: TaskRequest | Mapping[str, Any] | None = None,
        *,
        dag: DagTarget | None = None,
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
        by the schedule and the tick), or ``dag``, a whole run (``{"queue": ..., "steps": ...,
        "failure_policy": ...}``; steps as for ``submit_dag``). ``concurrency_policy`` says
        what a tick does while the previous fire's task (or run) is unfinished; a tick later
        than ``starting_deadline_seconds`` is skipped. Changing ``cron`` or ``timezone`` starts
        the ticks anew from now.
        """
        spec = schedule_spec(
            namespace or self.namespace,
            name,
            cron,
            task,
            dag=dag,
            timezone=timezone,
            concurrency_policy=concurrency_policy,
            suspend=suspend,
            starting_deadline_seconds=starting_deadline_seconds,
        )
        call = self._put_schedule_call(spec)
        return self._run(call)

    def get_schedule(self, name: str, *, namespace: str | None = None) -> Schedule:
        """The schedule ``name``, with its next and last fire times and counts."""
        return self._run(self._get_schedule_call(name, namespace))

    def list_schedules(self, namespace: str | None = None) -> list[Schedule]:
        """Every schedule of the namespace (``namespace=""``: of every one), by name."""
        return self._follow(self._list_schedules_plan(namespace))

    def delete_schedule(self, name: str, *, namespace: str | None = None) -> bool:
        """Delete the schedule; ``False`` when there was none. Fired tasks are kept."""
        return self._run(self._delete_schedule_call(name, namespace))

    def suspend_schedule(self, name: str, *, namespace: str | None = None) -> Schedule:
        """Stop the schedule from firing until ``resume_schedule``."""
        return self._run(self._set_suspended_call(name, namespace, True))

    def resume_schedule(self, name: str, *, namespace: str | None = None) -> Schedule:
        """Let a suspended schedule fire again: the latest tick it missed fires once, unless
        it is older than its ``starting_deadline_seconds``."""
        return self._run(self._set_suspended_call(name, namespace, False))

    # -- DAG runs -----------------------------------------------------------------------------

    def submit_dag(
        self,
        steps: Flow | Step | Iterable[Step | Mapping[str, Any]],
        queue: str,
        *,
        namespace: str | None = None,
        name: str | None = None,
        failure_policy: str = "fail_fast",
        idempotency_key: str | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> str:
        """Submit a DAG run and return its id. ``steps``: a ``Flow`` (``chain``, ``group``), a
        ``Step``, or steps as ``Step`` values or dicts (``name``, ``handler``, ``payload``,
        ``depends_on``, ``queue``, ...). ``queue`` is the queue of steps that name none.

        ``failure_policy``: ``fail_fast`` (a failed step cancels every step not started) or
        ``continue`` (every branch whose parents succeeded runs). The whole run is checked
        first: a cycle, an unknown dependency or a duplicate name raises
        ``InvalidArgumentError`` naming it. A resubmission with the same ``idempotency_key``
        returns the existing run.
        """
        return self._run(
            self._submit_dag_call(
                steps, queue, namespace, name, failure_policy, idempotency_key, labels
            )
        )

    def get_dag(self, run_id: str, *, results: bool = False) -> DagRun:
        """The run with every step's state, attempts and times (and results, if asked)."""
        return self._run(self._get_dag_call(run_id, results))

    def watch_dag(self, run_id: str) -> Iterator[DagRun]:
        """Snapshots of the run: as it is, then each change of it or a step, until it ends."""
        return self._watch(self._dag_watch(run_id), None)

    def wait_dag(
        self, run_id: str, timeout: float | None = None, *, results: bool = False
    ) -> DagRun:
        """Block until the run has finished and return it (``results``: with the steps'
        results). Raises ``TaskFlowTimeoutError`` when ``timeout`` seconds pass first."""
        run = self._wait(self._dag_watch(run_id), timeout)
        return self.get_dag(run_id, results=True) if results else run

    def cancel_dag(self, run_id: str) -> DagRun:
        """Cancel the run: steps not started never run, running ones are stopped."""
        return self._run(self._cancel_dag_call(run_id))

    def retry_dag(self, run_id: str) -> DagRun:
        """Run a failed or cancelled run again from the steps that did not succeed."""
        return self._run(self._retry_dag_call(run_id))

    def list_dags(
        self,
        states: Iterable[DagRunState | str] | None = None,
        *,
        namespace: str | None = None,
        limit: int | None = 100,
    ) -> list[DagRun]:
        """Runs of the namespace, newest first, with step counts but without their steps."""
        return self._follow(self._list_dags_plan(states, namespace, limit))
