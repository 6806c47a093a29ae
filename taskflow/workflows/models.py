"""DAG submissions: named steps with ``depends_on``, checked whole before anything is stored.

Every problem is an ``InvalidArgument`` naming the field: an empty run, too many steps, a
duplicate name, an unknown or self dependency, a cycle (the steps that form it, in order), or a
bad step field (as for any task: ``dag.steps[2].handler: ...``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from taskflow.errors import InvalidArgument
from taskflow.models import TaskSubmission, validate_submission

#: Most steps one run may have.
MAX_STEPS = 10_000
_STEP_PATTERN = r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,126}[A-Za-z0-9])?$"
_NAMESPACE_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
_QUEUE_PATTERN = r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,126}[A-Za-z0-9])?$"

FailurePolicy = Literal["fail_fast", "continue"]

#: Task fields a step may not set: a step runs when its parents succeed, keyed by its run.
_NOT_FOR_STEPS = {
    "delay_seconds": "a step runs as soon as its parents have succeeded; it cannot be delayed",
    "run_at": "a step runs as soon as its parents have succeeded; it cannot be scheduled",
    "idempotency_key": "steps are keyed by their run: give the run an idempotency_key",
}


class _RunFields(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    namespace: str = Field(default="default", pattern=_NAMESPACE_PATTERN)
    queue: str = Field(pattern=_QUEUE_PATTERN)
    name: str | None = Field(default=None, min_length=1, max_length=253)
    failure_policy: FailurePolicy = "fail_fast"
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=256)
    labels: dict[str, str] = Field(default_factory=dict)


@dataclass(frozen=True)
class Step:
    name: str
    depends_on: tuple[str, ...]
    task: TaskSubmission  # queue, handler, payload, priority, retries, timeout, ...


@dataclass(frozen=True)
class DagSubmission:
    namespace: str
    queue: str  # default queue of steps that name none
    name: str | None
    failure_policy: FailurePolicy
    idempotency_key: str | None
    labels: dict[str, str]
    steps: tuple[Step, ...]


def validate_dag(raw: dict[str, Any], path: str = "dag") -> DagSubmission:
    """Check a run as a whole: its fields, every step, and the shape of the graph.

    ``raw`` has the run's fields and ``steps``: a list of mappings with ``name``,
    ``depends_on`` and the fields of a task (``handler``, ``payload`` or ``payload_json``,
    ``queue``, ``priority``, ``max_retries``, ``timeout_seconds``, ``retry``, ...).
    """
    raw = dict(raw)
    steps_raw = raw.pop("steps", None)
    try:
        run = _RunFields.model_validate(raw)
    except ValidationError as exc:
        raise _invalid(exc, path) from None
    if not isinstance(steps_raw, list | tuple) or not steps_raw:
        raise InvalidArgument(f"{path}.steps", "a run needs at least one step")
    if len(steps_raw) > MAX_STEPS:
        raise InvalidArgument(
            f"{path}.steps", f"at most {MAX_STEPS} steps per run, got {len(steps_raw)}"
        )
    steps = [_step(s, i, run, path) for i, s in enumerate(steps_raw)]
    _check_graph(steps, path)
    return DagSubmission(
        namespace=run.namespace,
        queue=run.queue,
        name=run.name,
        failure_policy=run.failure_policy,
        idempotency_key=run.idempotency_key,
        labels=dict(run.labels),
        steps=tuple(steps),
    )


def _step(raw: Any, i: int, run: _RunFields, path: str) -> Step:
    where = f"{path}.steps[{i}]"
    if not isinstance(raw, dict):
        raise InvalidArgument(where, "must be a mapping with name, handler and depends_on")
    fields = dict(raw)
    name = fields.pop("name", None)
    if not isinstance(name, str) or not name:
        raise InvalidArgument(f"{where}.name", "is required")
    if not re.fullmatch(_STEP_PATTERN, name):
        raise InvalidArgument(
            f"{where}.name",
            f"{name!r} is not a step name: letters, digits, '.', '_' and '-', at most 128",
        )
    depends = fields.pop("depends_on", None) or []
    if not isinstance(depends, list | tuple) or not all(isinstance(d, str) for d in depends):
        raise InvalidArgument(f"{where}.depends_on", "must be a list of step names")
    for key, why in _NOT_FOR_STEPS.items():
        if fields.get(key):
            raise InvalidArgument(f"{where}.{key}", why)
        fields.pop(key, None)
    fields["namespace"] = run.namespace
    if not fields.get("queue"):
        fields["queue"] = run.queue
    return Step(name, tuple(depends), validate_submission(fields, path=where))


def _check_graph(steps: Sequence[Step], path: str) -> None:
    index: dict[str, int] = {}
    for i, s in enumerate(steps):
        if s.name in index:
            raise InvalidArgument(
                f"{path}.steps[{i}].name",
                f"duplicate step name {s.name!r} (also steps[{index[s.name]}])",
            )
        index[s.name] = i
    for i, s in enumerate(steps):
        seen: set[str] = set()
        for j, dep in enumerate(s.depends_on):
            field = f"{path}.steps[{i}].depends_on[{j}]"
            if dep == s.name:
                raise InvalidArgument(field, f"step {s.name!r} cannot depend on itself")
            if dep not in index:
                raise InvalidArgument(field, f"unknown step {dep!r}")
            if dep in seen:
                raise InvalidArgument(field, f"{dep!r} is listed twice")
            seen.add(dep)
    cycle = find_cycle({s.name: s.depends_on for s in steps})
    if cycle:
        raise InvalidArgument(f"{path}.steps", "the steps form a cycle: " + " -> ".join(cycle))


def find_cycle(parents: dict[str, Sequence[str]]) -> list[str] | None:
    """A cycle of the graph ``{step: its parents}`` as ``[a, b, ..., a]`` (a depends on b...),
    or None. Iterative, so ten thousand steps in a line do not exhaust the stack."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    for start in parents:
        if state.get(start):
            continue
        path: list[str] = []
        stack: list[tuple[str, int]] = [(start, 0)]
        while stack:
            node, i = stack.pop()
            if i == 0:
                state[node] = 1
                path.append(node)
            deps = parents[node]
            if i < len(deps):
                stack.append((node, i + 1))
                nxt = deps[i]
                if state.get(nxt) == 1:
                    return [*path[path.index(nxt) :], nxt]
                if not state.get(nxt):
                    stack.append((nxt, 0))
            else:
                state[node] = 2
                path.pop()
    return None


def _invalid(exc: ValidationError, path: str) -> InvalidArgument:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    return InvalidArgument(f"{path}.{loc}" if loc else path, str(err["msg"]))
