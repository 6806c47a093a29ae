"""``taskflow.v1.TaskService`` over an ``Engine``: parse, delegate, convert."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence

from taskflow.api import access, idempotency
from taskflow.api.convert import stats_to_proto, submission_from_spec, task_to_proto
from taskflow.api.dags import dag_from_proto, run_to_proto
from taskflow.api.schedules import schedule_from_proto, schedule_to_proto
from taskflow.api.status import streaming, unary
from taskflow.api.tokens import Role
from taskflow.api.types import Context
from taskflow.api.watch import WatchHub
from taskflow.engine import Engine
from taskflow.errors import InvalidArgument, PayloadTooLarge
from taskflow.keys import QueueRef
from taskflow.models import SubmitResult, TaskRecord, TaskSubmission, utcnow
from taskflow.scheduling.service import ScheduleService
from taskflow.store.dags import DagRunRecord
from taskflow.values import labels_problem, labels_size
from taskflow.workflows.service import DagService
from taskflow_client.v1 import tasks_pb2 as pb
from taskflow_client.v1 import tasks_pb2_grpc as pb_grpc

#: Most tasks one SubmitTasks call may carry.
MAX_BATCH = 10_000

#: Called with every accepted submission and its result (metrics).
SubmitHook = Callable[[Sequence[TaskSubmission], Sequence[SubmitResult]], None]


def queue_ref(namespace: str, queue: str) -> QueueRef:
    if not queue:
        raise InvalidArgument("queue", "is required")
    return QueueRef(namespace or "default", queue)


def _page(tasks: Sequence[TaskRecord], token: str | None) -> pb.ListTasksResponse:
    now = utcnow()
    return pb.ListTasksResponse(
        tasks=[task_to_proto(t, now) for t in tasks], next_page_token=token or ""
    )


class TaskServiceServicer(pb_grpc.TaskServiceServicer):
    def __init__(
        self,
        engine: Engine,
        hub: WatchHub[TaskRecord],
        *,
        dags: DagService,
        run_hub: WatchHub[DagRunRecord],
        on_submit: SubmitHook | None = None,
    ) -> None:
        """``hub`` and ``run_hub`` are the (started) watch hubs of tasks and of DAG runs."""
        self._engine = engine
        self._hub = hub
        self._on_submit = on_submit
        self._schedules = ScheduleService(engine)
        self._dags = dags
        self._run_hub = run_hub

    async def _submit(self, specs: Sequence[TaskSubmission]) -> list[SubmitResult]:
        results = await self._engine.submit(specs)
        if self._on_submit is not None:
            self._on_submit(specs, results)
        return results

    def _checked(self, spec: pb.TaskSpec, path: str) -> TaskSubmission:
        submission = submission_from_spec(spec, path)
        access.require_namespace(Role.SUBMIT, submission.namespace)
        self._engine.check_payload(submission, f"{path}.payload_json")
        self._check_labels_size(len(submission.payload_json.encode()), submission.labels, path)
        return submission

    def _check_labels_size(self, payload: int, labels: dict[str, str], path: str) -> None:
        """Labels count against the payload limit (they are stored and sent alike)."""
        limit = self._engine.settings.max_payload_bytes
        size = payload + labels_size(labels)
        if labels and size > limit:
            raise PayloadTooLarge(f"{path}.labels", size, limit)

    async def _task(self, task_id: str, *, with_attempts: bool = False) -> TaskRecord:
        """The task, if the caller may see its namespace (else NOT_FOUND, as if absent)."""
        task = await self._engine.get(task_id, with_attempts=with_attempts)
        access.reveal(task.namespace, f"task {task.id} not found")
        return task

    async def _run(self, run_id: str) -> DagRunRecord:
        """The DAG run, if the caller may see its namespace (else NOT_FOUND, as if absent)."""
        run = await self._dags.get(run_id)
        access.reveal(run.namespace, f"DAG run {run.id} not found")
        return run

    @unary
    async def SubmitTask(
        self, request: pb.SubmitTaskRequest, context: Context
    ) -> pb.SubmitTaskResponse:
        access.require(Role.SUBMIT)
        checked = self._checked(request.task, "task")
        access.charge(1)
        (result,) = await self._submit([checked])
        await idempotency.check_after(self._engine, [checked], [result], ["task"])
        return pb.SubmitTaskResponse(task_id=result.task_id, created=result.created)

    @unary
    async def SubmitTasks(
        self, request: pb.SubmitTasksRequest, context: Context
    ) -> pb.SubmitTasksResponse:
        access.require(Role.SUBMIT)
        count = len(request.tasks)
        if not count:
            raise InvalidArgument("tasks", "at least one task is required")
        if count > MAX_BATCH:
            raise InvalidArgument("tasks", f"at most {MAX_BATCH} tasks per call, got {count}")
        specs = [self._checked(spec, f"tasks[{i}]") for i, spec in enumerate(request.tasks)]
        paths = [f"tasks[{i}]" for i in range(count)]
        await idempotency.check_before(self._engine, specs, paths)
        access.charge(count)
        results = await self._submit(specs)
        await idempotency.check_after(self._engine, specs, results, paths)
        return pb.SubmitTasksResponse(
            results=[pb.SubmitTaskResponse(task_id=r.task_id, created=r.created) for r in results]
        )

    @unary
    async def GetTask(self, request: pb.GetTaskRequest, context: Context) -> pb.Task:
        access.require(Role.READ)
        task = await self._task(request.task_id, with_attempts=True)
        return task_to_proto(task, utcnow())

    @streaming
    async def WatchTask(
        self, request: pb.WatchTaskRequest, context: Context
    ) -> AsyncIterator[pb.Task]:
        access.require(Role.READ)
        task = await self._task(request.task_id)
        yield task_to_proto(task, utcnow())
        if task.done:
            return
        async with self._hub.subscribe(task) as watcher:
            while not task.done:
                task = await watcher.next()
                yield task_to_proto(task, utcnow())

    @unary
    async def CancelTask(
        self, request: pb.CancelTaskRequest, context: Context
    ) -> pb.CancelTaskResponse:
        if access.require(Role.SUBMIT).scoped:
            await self._task(request.task_id)
        task = await self._engine.cancel(request.task_id)
        return pb.CancelTaskResponse(task=task_to_proto(task, utcnow()))

    @unary
    async def ListTasks(
        self, request: pb.ListTasksRequest, context: Context
    ) -> pb.ListTasksResponse:
        access.require_namespace(Role.READ, request.namespace)
        tasks, token = await self._engine.list_tasks(
            namespace=request.namespace or "default",
            queue=request.queue or None,
            states=list(request.states),
            page_size=request.page_size,
            page_token=request.page_token or None,
        )
        return _page(tasks, token)

    @unary
    async def GetQueueStats(
        self, request: pb.GetQueueStatsRequest, context: Context
    ) -> pb.QueueStats:
        access.require_namespace(Role.READ, request.namespace)
        stats = await self._engine.queue_stats(queue_ref(request.namespace, request.queue))
        return stats_to_proto(stats)

    @unary
    async def ListQueues(
        self, request: pb.ListQueuesRequest, context: Context
    ) -> pb.ListQueuesResponse:
        if request.namespace:
            access.require_namespace(Role.READ, request.namespace)
        else:
            access.require(Role.READ)
        queues = await self._engine.list_queues(request.namespace or None)
        visible = access.visible(queues, "namespace")
        return pb.ListQueuesResponse(queues=[stats_to_proto(q) for q in visible])

    @unary
    async def ListDeadLetters(
        self, request: pb.ListDeadLettersRequest, context: Context
    ) -> pb.ListTasksResponse:
        access.require_namespace(Role.READ, request.namespace)
        tasks, token = await self._engine.dead_letters(
            queue_ref(request.namespace, request.queue),
            request.page_size,
            request.page_token or None,
        )
        return _page(tasks, token)

    @unary
    async def ReplayDeadLetters(
        self, request: pb.ReplayDeadLettersRequest, context: Context
    ) -> pb.ReplayDeadLettersResponse:
        access.require_namespace(Role.ADMIN, request.namespace)
        ids = await self._engine.replay(
            queue_ref(request.namespace, request.queue), list(request.task_ids)
        )
        return pb.ReplayDeadLettersResponse(task_ids=ids)

    # -- schedules ----------------------------------------------------------------------------

    @unary
    async def PutSchedule(
        self, request: pb.PutScheduleRequest, context: Context
    ) -> pb.PutScheduleResponse:
        access.require(Role.ADMIN)
        spec = schedule_from_proto(request.schedule)
        access.require_namespace(Role.ADMIN, spec.namespace)
        put = await self._schedules.put(spec)
        return pb.PutScheduleResponse(
            schedule=schedule_to_proto(put.record, utcnow()),
            created=put.created,
            changed=put.changed,
        )

    @unary
    async def GetSchedule(self, request: pb.GetScheduleRequest, context: Context) -> pb.Schedule:
        access.require_namespace(Role.READ, request.namespace)
        record = await self._schedules.get(request.namespace, request.name)
        return schedule_to_proto(record, utcnow())

    @unary
    async def ListSchedules(
        self, request: pb.ListSchedulesRequest, context: Context
    ) -> pb.ListSchedulesResponse:
        if request.namespace:
            access.require_namespace(Role.READ, request.namespace)
        else:
            access.require(Role.READ)
        records, token = await self._schedules.list_page(
            request.namespace or None, request.page_size, request.page_token or None
        )
        now = utcnow()
        return pb.ListSchedulesResponse(
            schedules=[schedule_to_proto(r, now) for r in access.visible(records, "namespace")],
            next_page_token=token or "",
        )

    @unary
    async def DeleteSchedule(
        self, request: pb.DeleteScheduleRequest, context: Context
    ) -> pb.DeleteScheduleResponse:
        access.require_namespace(Role.ADMIN, request.namespace)
        deleted = await self._schedules.delete(request.namespace, request.name)
        return pb.DeleteScheduleResponse(deleted=deleted)

    @unary
    async def SetScheduleSuspended(
        self, request: pb.SetScheduleSuspendedRequest, context: Context
    ) -> pb.Schedule:
        access.require_namespace(Role.ADMIN, request.namespace)
        record = await self._schedules.set_suspended(
            request.namespace, request.name, request.suspend
        )
        return schedule_to_proto(record, utcnow())

    # -- DAG runs -----------------------------------------------------------------------------

    @unary
    async def SubmitDag(
        self, request: pb.SubmitDagRequest, context: Context
    ) -> pb.SubmitDagResponse:
        access.require(Role.SUBMIT)
        dag = dag_from_proto(request.dag)
        access.require_namespace(Role.SUBMIT, dag.namespace)
        problem = labels_problem(dag.labels)
        if problem:
            raise InvalidArgument("dag.labels", problem)
        self._check_labels_size(0, dag.labels, "dag")
        access.charge(len(dag.steps))
        run_id, created = await self._dags.submit(dag)
        return pb.SubmitDagResponse(run_id=run_id, created=created)

    @unary
    async def GetDagRun(self, request: pb.GetDagRunRequest, context: Context) -> pb.DagRun:
        access.require(Role.READ)
        run = await self._run(request.run_id)
        limit = self._engine.settings.max_page_bytes if request.include_results else None
        return run_to_proto(run, with_attempts=True, results_limit=limit)

    @streaming
    async def WatchDagRun(
        self, request: pb.WatchDagRunRequest, context: Context
    ) -> AsyncIterator[pb.DagRun]:
        access.require(Role.READ)
        run = await self._run(request.run_id)
        yield run_to_proto(run)
        if run.done:
            return
        async with self._run_hub.subscribe(run) as watcher:
            while not run.done:
                run = await watcher.next()
                yield run_to_proto(run)

    @unary
    async def CancelDagRun(self, request: pb.CancelDagRunRequest, context: Context) -> pb.DagRun:
        if access.require(Role.SUBMIT).scoped:
            await self._run(request.run_id)
        return run_to_proto(await self._dags.cancel(request.run_id))

    @unary
    async def RetryDagRun(self, request: pb.RetryDagRunRequest, context: Context) -> pb.DagRun:
        if access.require(Role.ADMIN).scoped:
            await self._run(request.run_id)
        return run_to_proto(await self._dags.retry(request.run_id))

    @unary
    async def ListDagRuns(
        self, request: pb.ListDagRunsRequest, context: Context
    ) -> pb.ListDagRunsResponse:
        access.require_namespace(Role.READ, request.namespace)
        runs, counts, token = await self._dags.list(
            namespace=request.namespace or "default",
            states=list(request.states),
            page_size=request.page_size,
            page_token=request.page_token or None,
        )
        return pb.ListDagRunsResponse(
            runs=[run_to_proto(r, counts=counts.get(r.id, {}), with_steps=False) for r in runs],
            next_page_token=token or "",
        )
