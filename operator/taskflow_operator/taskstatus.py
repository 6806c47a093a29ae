"""How an engine ``TaskRecord`` reads as a ``Task``'s status."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from taskflow.models import TaskRecord, TaskState
from taskflow_operator.conditions import FALSE, TRUE, same_conditions, set_condition
from taskflow_operator.crd.task import FINISHED_PHASES, TaskPhase

PHASES: dict[TaskState, TaskPhase] = {
    TaskState.SCHEDULED: TaskPhase.SCHEDULED,
    TaskState.QUEUED: TaskPhase.QUEUED,
    TaskState.RUNNING: TaskPhase.RUNNING,
    TaskState.RETRYING: TaskPhase.RETRYING,
    TaskState.SUCCEEDED: TaskPhase.SUCCEEDED,
    TaskState.FAILED: TaskPhase.FAILED,
    TaskState.CANCELLED: TaskPhase.CANCELLED,
}

SUBMITTED = "Submitted"
FINISHED = "Finished"
MAX_ERROR_CHARS = 4096


def rfc3339(value: datetime | None) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def mirrored_status(
    task: TaskRecord, now: datetime, conditions: Sequence[dict[str, Any]] = ()
) -> dict[str, Any]:
    """The status fields that follow the engine (compare before writing: one write per change)."""
    phase = PHASES[task.visible_state(now)]
    conds = set_condition(conditions, SUBMITTED, TRUE, "Accepted", f"task {task.id}")
    if phase in FINISHED_PHASES:
        conds = set_condition(conds, FINISHED, TRUE, phase.value, _finished_message(task))
    else:
        conds = set_condition(conds, FINISHED, FALSE, phase.value)
    return {
        "phase": phase.value,
        "taskId": task.id,
        "attempts": task.attempts,
        "result": task.result if phase is TaskPhase.SUCCEEDED else None,
        "error": task.error[:MAX_ERROR_CHARS] if task.error else None,
        "startTime": rfc3339(task.started_at),
        "completionTime": rfc3339(task.finished_at) if phase in FINISHED_PHASES else None,
        "conditions": conds,
    }


def waiting_status(
    reason: str, message: str, conditions: Sequence[dict[str, Any]] = ()
) -> dict[str, Any]:
    """A Task not submitted yet, for a reason that may pass (its TaskQueue is not there yet)."""
    conds = set_condition(conditions, SUBMITTED, FALSE, reason, message)
    conds = set_condition(conds, FINISHED, FALSE, TaskPhase.PENDING.value)
    return {"phase": TaskPhase.PENDING.value, "conditions": conds}


def _finished_message(task: TaskRecord) -> str:
    if task.state is TaskState.SUCCEEDED:
        return f"succeeded after {task.attempts} attempt(s)"
    if task.state is TaskState.CANCELLED:
        return "cancelled"
    return (task.error or "failed")[:MAX_ERROR_CHARS]


def rejected_status(
    reason: str, message: str, conditions: Sequence[dict[str, Any]] = ()
) -> dict[str, Any]:
    """A Task that never reached the engine (its queue is missing, its spec is refused)."""
    conds = set_condition(conditions, SUBMITTED, FALSE, reason, message)
    conds = set_condition(conds, FINISHED, TRUE, reason, message)
    return {"phase": TaskPhase.FAILED.value, "error": message, "conditions": conds}


def status_changed(current: dict[str, Any], wanted: dict[str, Any]) -> bool:
    """Whether writing ``wanted`` would change what ``kubectl get`` shows."""
    for key, value in wanted.items():
        if key == "conditions":
            if not same_conditions(current.get("conditions") or [], value):
                return True
        elif current.get(key) != value:
            return True
    return False


def is_finished(status: dict[str, Any]) -> bool:
    return status.get("phase") in {p.value for p in FINISHED_PHASES}
