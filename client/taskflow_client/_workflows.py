"""DAG runs on the client side: steps, the shapes built from them, and what a run reports.

```python
from taskflow_client import Step, chain, group

flow = chain(
    Step("fetch", "download", {"url": "..."}),
    group(Step("resize", "resize"), Step("scan", "virus_scan")),
    Step("publish", "publish"),
)                                   # fetch -> (resize, scan) -> publish
run_id = client.submit_dag(flow, queue="media")
run = client.wait_dag(run_id, timeout=600)
run.state, run.steps                # "succeeded", {"fetch": "succeeded", ...}
```

A step's handler sees its parents' results by step name (``ctx.parents["fetch"]``).
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from ._convert import attempt_from_proto, decode_json, spec_from_request, timestamp_of
from ._errors import InvalidArgumentError, TaskFlowError
from ._models import Attempt, RetryPolicy, TaskRequest
from ._names import check_labels
from .v1 import tasks_pb2 as pb

__all__ = [
    "DagRun",
    "DagRunState",
    "DagStepInfo",
    "Flow",
    "Step",
    "StepState",
    "chain",
    "group",
]


@dataclass(frozen=True)
class Step:
    """One step: a task that runs once every step it ``depends_on`` has succeeded.

    ``queue`` defaults to the run's. The other fields mean what ``Client.submit``'s do.
    """

    name: str
    handler: str
    payload: Any = None
    depends_on: Sequence[str] = ()
    queue: str | None = None
    priority: int = 0
    max_retries: int | None = None
    timeout: float | timedelta | None = None
    retry: RetryPolicy | None = None
    labels: Mapping[str, str] | None = None
    concurrency_key: str | None = None
    concurrency_limit: int | None = None


@dataclass(frozen=True)
class Flow:
    """Steps wired together: ``first`` are the steps that wait for what comes before the flow,
    ``last`` the ones what comes after waits for. Build with ``chain``, ``group`` and
    ``then``; submit with ``submit_dag``."""

    steps: tuple[Step, ...]
    first: tuple[str, ...]
    last: tuple[str, ...]

    def then(self, *parts: Step | Flow) -> Flow:
        """This flow, then ``parts`` in order: ``group(a, b).then(c)`` is a fan-in."""
        return chain(self, *parts)


def _flow(part: Step | Flow) -> Flow:
    if isinstance(part, Flow):
        return part
    if isinstance(part, Step):
        return Flow((part,), (part.name,), (part.name,))
    raise InvalidArgumentError(f"a flow is built from Step and Flow values, got {part!r}")


def chain(*parts: Step | Flow) -> Flow:
    """Each part runs after the one before it has succeeded: ``chain(a, b, c)`` is a line;
    a group in a chain fans out and in (its steps all wait for what comes before, and what
    comes after waits for all of them)."""
    if not parts:
        raise InvalidArgumentError("chain: give at least one step")
    flows = [_flow(p) for p in parts]
    steps: list[Step] = []
    previous: tuple[str, ...] = ()
    for flow in flows:
        for step in flow.steps:
            if previous and step.name in flow.first:
                step = replace(step, depends_on=(*step.depends_on, *previous))
            steps.append(step)
        previous = flow.last
    return Flow(tuple(steps), flows[0].first, flows[-1].last)


def group(*parts: Step | Flow) -> Flow:
    """Parts that run side by side (a fan-out); ``.then(step)`` waits for all of them."""
    if not parts:
        raise InvalidArgumentError("group: give at least one step")
    flows = [_flow(p) for p in parts]
    return Flow(
        tuple(s for f in flows for s in f.steps),
        tuple(n for f in flows for n in f.first),
        tuple(n for f in flows for n in f.last),
    )


def steps_of(dag: Flow | Step | Iterable[Step | Mapping[str, Any]]) -> list[Step]:
    """The steps of whatever ``submit_dag`` was given: a flow, a step, or steps (``Step``
    values or dicts with its fields)."""
    if isinstance(dag, Flow):
        return list(dag.steps)
    if isinstance(dag, Step):
        return [dag]
    if isinstance(dag, Mapping | str | bytes):
        raise InvalidArgumentError("steps: give a Flow, a Step, or a list of steps")
    out: list[Step] = []
    for i, item in enumerate(dag):
        if isinstance(item, Step):
            out.append(item)
        elif isinstance(item, Mapping):
            try:
                out.append(Step(**item))
            except TypeError as exc:
                raise InvalidArgumentError(f"steps[{i}]: {exc}") from None
        else:
            raise InvalidArgumentError(f"steps[{i}]: must be a Step or a dict, got {item!r}")
    return out


class DagRunState(enum.StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class StepState(enum.StrEnum):
    """A step's state: a task's, ``waiting`` for its parents, or ``skipped`` (it never ran:
    a parent did not succeed, or the run failed fast)."""

    WAITING = "waiting"
    SCHEDULED = "scheduled"
    QUEUED = "queued"
    RUNNING = "running"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class DagStepInfo:
    """One step of a run as the server reported it. ``result`` is filled when the run was read
    with ``results=True``."""

    name: str
    state: StepState
    task_id: str
    depends_on: tuple[str, ...] = ()
    queue: str = ""
    handler: str = ""
    attempts: int = 0
    error: str | None = None
    result: Any = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    attempt_history: tuple[Attempt, ...] = ()


@dataclass(frozen=True)
class DagRun:
    """A DAG run: ``steps`` maps each step's name to its state; ``step_info`` has the rest."""

    id: str
    namespace: str
    state: DagRunState
    queue: str = ""
    name: str | None = None
    failure_policy: str = "fail_fast"
    steps: Mapping[str, StepState] = field(default_factory=dict)
    step_info: Mapping[str, DagStepInfo] = field(default_factory=dict)
    step_counts: Mapping[str, int] = field(default_factory=dict)
    steps_total: int = 0
    labels: Mapping[str, str] = field(default_factory=dict)
    created_at: datetime | None = None
    updated_at: datetime | None = None
    finished_at: datetime | None = None
    results_omitted: bool = False

    @property
    def done(self) -> bool:
        return self.state != DagRunState.RUNNING

    @property
    def failed_steps(self) -> list[str]:
        return [name for name, state in self.steps.items() if state == StepState.FAILED]

    def result(self, step: str) -> Any:
        """The result of ``step`` (read the run with ``results=True``)."""
        try:
            return self.step_info[step].result
        except KeyError:
            raise KeyError(f"run {self.id} has no step {step!r}") from None


# -- messages ---------------------------------------------------------------------------------


def dag_request(
    dag: Flow | Step | Iterable[Step | Mapping[str, Any]],
    *,
    queue: str,
    namespace: str,
    name: str | None,
    failure_policy: str,
    idempotency_key: str | None,
    labels: Mapping[str, str] | None,
) -> pb.SubmitDagRequest:
    """The SubmitDag request, with an idempotency key (generated unless given) so it may be
    retried without starting the run twice."""
    spec = dag_spec(
        dag,
        queue=queue,
        namespace=namespace,
        name=name,
        failure_policy=failure_policy,
        labels=labels,
    )
    spec.idempotency_key = idempotency_key or uuid.uuid4().hex
    return pb.SubmitDagRequest(dag=spec)


def dag_spec(
    dag: Flow | Step | Iterable[Step | Mapping[str, Any]],
    *,
    queue: str,
    namespace: str,
    name: str | None,
    failure_policy: str,
    labels: Mapping[str, str] | None,
) -> pb.DagSpec:
    """The ``DagSpec`` of a run (no idempotency key: a schedule keys each tick's run)."""
    if not isinstance(queue, str) or not queue:
        raise InvalidArgumentError("queue: the queue of steps that name none is required")
    check_labels(labels, "labels")
    spec = pb.DagSpec(
        namespace=namespace,
        queue=queue,
        name=name or "",
        failure_policy=failure_policy,
        labels=dict(labels or {}),
    )
    for i, step in enumerate(steps_of(dag)):
        task = TaskRequest(
            queue=step.queue or "",
            handler=step.handler,
            payload=step.payload,
            priority=step.priority,
            max_retries=step.max_retries,
            timeout=step.timeout,
            retry=step.retry,
            labels=step.labels,
            concurrency_key=step.concurrency_key,
            concurrency_limit=step.concurrency_limit,
        )
        if isinstance(step.depends_on, str):
            raise InvalidArgumentError(f"steps[{i}].depends_on: a list of step names, not one")
        spec.steps.append(
            pb.DagStep(
                name=step.name,
                depends_on=list(step.depends_on),
                task=spec_from_request(task, "", prefix=f"steps[{i}]."),
            )
        )
    return spec


def _step_state(value: str) -> StepState:
    try:
        return StepState(value)
    except ValueError:
        raise TaskFlowError(
            f"the server reported the unknown step state {value!r}; upgrade taskflow-client"
        ) from None


def dag_run_from_proto(msg: pb.DagRun) -> DagRun:
    info = {
        s.name: DagStepInfo(
            name=s.name,
            state=_step_state(s.state),
            task_id=s.task_id,
            depends_on=tuple(s.depends_on),
            queue=s.queue,
            handler=s.handler,
            attempts=s.attempts,
            error=s.error or None,
            result=decode_json(s.result_json),
            started_at=timestamp_of(s, "started_at"),
            finished_at=timestamp_of(s, "finished_at"),
            attempt_history=tuple(attempt_from_proto(a) for a in s.attempt_history),
        )
        for s in msg.steps
    }
    try:
        state = DagRunState(msg.state)
    except ValueError:
        raise TaskFlowError(
            f"the server reported the unknown run state {msg.state!r}; upgrade taskflow-client"
        ) from None
    return DagRun(
        id=msg.id,
        namespace=msg.namespace,
        state=state,
        queue=msg.queue,
        name=msg.name or None,
        failure_policy=msg.failure_policy,
        steps={name: i.state for name, i in info.items()},
        step_info=info,
        step_counts=dict(msg.step_counts),
        steps_total=msg.steps_total,
        labels=dict(msg.labels),
        created_at=timestamp_of(msg, "created_at"),
        updated_at=timestamp_of(msg, "updated_at"),
        finished_at=timestamp_of(msg, "finished_at"),
        results_omitted=msg.results_omitted,
    )


def list_dags_request(
    namespace: str, states: Iterable[DagRunState | str] | None, page_size: int, token: str | None
) -> pb.ListDagRunsRequest:
    values: list[str] = []
    for state in [states] if isinstance(states, str) else states or []:
        try:
            values.append(DagRunState(state).value)
        except ValueError:
            raise InvalidArgumentError(f"states: unknown run state {state!r}") from None
    return pb.ListDagRunsRequest(
        namespace=namespace, states=values, page_size=page_size, page_token=token or ""
    )
