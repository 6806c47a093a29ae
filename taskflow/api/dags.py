"""Protocol buffers <-> DAG runs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from taskflow.api.convert import attempt_to_proto, spec_to_dict, task_spec, to_timestamp
from taskflow.errors import InvalidArgument
from taskflow.store.dags import DagRunRecord, StepRecord
from taskflow.workflows.models import DagSubmission, validate_dag
from taskflow_client.v1 import tasks_pb2 as pb

#: Task fields that are the run's, not a step's: a step that sets them is refused by name.
_RUN_FIELDS = ("namespace",)


def dag_from_proto(msg: pb.DagSpec, path: str = "dag") -> DagSubmission:
    """Validate a ``DagSpec``; errors name the field (``dag.steps[2].depends_on[0]``)."""
    return validate_dag(dag_fields(msg, path), path)


def dag_fields(msg: pb.DagSpec, path: str = "dag") -> dict[str, Any]:
    """The fields a ``DagSpec`` sets, as ``validate_dag`` takes them (not validated yet)."""
    steps: list[dict[str, Any]] = []
    for i, step in enumerate(msg.steps):
        where = f"{path}.steps[{i}]"
        fields = spec_to_dict(step.task, f"{where}.task")
        for name in _RUN_FIELDS:
            if fields.pop(name, None):
                raise InvalidArgument(f"{where}.task.{name}", "a step's namespace is its run's")
        steps.append({"name": step.name, "depends_on": list(step.depends_on), **fields})
    raw: dict[str, Any] = {"steps": steps}
    for name in ("namespace", "queue", "name", "failure_policy", "idempotency_key"):
        value: str = getattr(msg, name)
        if value:
            raw[name] = value
    if msg.labels:
        raw["labels"] = dict(msg.labels)
    return raw


def dag_to_proto(dag: DagSubmission) -> pb.DagSpec:
    """The ``DagSpec`` of a validated run (its steps carry no namespace: it is the run's)."""
    msg = pb.DagSpec(
        namespace=dag.namespace,
        queue=dag.queue,
        name=dag.name or "",
        failure_policy=dag.failure_policy,
        idempotency_key=dag.idempotency_key or "",
        labels=dag.labels,
    )
    for step in dag.steps:
        task = task_spec(step.task)
        task.namespace = ""
        msg.steps.append(pb.DagStep(name=step.name, depends_on=list(step.depends_on), task=task))
    return msg


def run_to_proto(
    run: DagRunRecord,
    *,
    counts: dict[str, int] | None = None,
    with_steps: bool = True,
    with_attempts: bool = False,
    results_limit: int | None = None,
) -> pb.DagRun:
    """``results_limit``: include each step's result while they fit in that many bytes."""
    msg = pb.DagRun(
        id=run.id,
        namespace=run.namespace,
        name=run.name or "",
        queue=run.queue,
        failure_policy=run.failure_policy,
        state=run.state,
        labels=run.labels,
        steps_total=run.steps_total,
        step_counts=counts if counts is not None else run.counts(),
    )
    _times(msg, created_at=run.created_at, updated_at=run.updated_at, finished_at=run.finished_at)
    if with_steps:
        room = results_limit
        for step in run.steps:
            out = _step(step, with_attempts)
            result = step.task.result_json
            if room is not None and result is not None and result != "null":
                if len(result) <= room:
                    out.result_json = result
                    room -= len(result)
                else:
                    msg.results_omitted = True
            msg.steps.append(out)
    return msg


def _step(step: StepRecord, with_attempts: bool) -> pb.DagRunStep:
    t = step.task
    msg = pb.DagRunStep(
        name=step.name,
        depends_on=list(step.depends_on),
        state=step.state,
        task_id=t.id,
        queue=t.queue,
        handler=t.handler,
        attempts=t.attempts,
        error=t.error or "",
    )
    _times(msg, started_at=t.started_at, finished_at=t.finished_at)
    if with_attempts:
        msg.attempt_history.extend(attempt_to_proto(a) for a in t.attempt_history)
    return msg


def _times(msg: Any, **values: datetime | None) -> None:
    for name, value in values.items():
        if value is not None:
            getattr(msg, name).CopyFrom(to_timestamp(value))


def run_version(run: DagRunRecord, now: datetime) -> tuple[datetime, str, datetime | None]:
    """What a watcher of a run compares: the run, and the latest change of any of its steps."""
    latest = max((s.task.updated_at for s in run.steps), default=None)
    return run.updated_at, run.state, latest
