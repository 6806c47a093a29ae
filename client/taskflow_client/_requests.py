"""Request messages built from the arguments of the client methods (shared by both clients)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ._convert import request_from_item, spec_from_request, with_idempotency_key
from ._errors import InvalidArgumentError
from ._models import TaskRequest, TaskState
from .v1 import tasks_pb2 as pb

__all__ = [
    "list_dead_letters_request",
    "list_schedules_request",
    "list_tasks_request",
    "replay_request",
    "submit_many_request",
    "submit_request",
]


def submit_request(request: TaskRequest, namespace: str) -> pb.SubmitTaskRequest:
    """The SubmitTask request of ``request``, with an idempotency key so it may be retried."""
    spec = spec_from_request(with_idempotency_key(request), namespace)
    return pb.SubmitTaskRequest(task=spec)


def submit_many_request(
    items: Iterable[TaskRequest | Mapping[str, Any]], namespace: str
) -> pb.SubmitTasksRequest:
    """The SubmitTasks request of ``items``; items without an idempotency key get one."""
    specs = [
        spec_from_request(
            with_idempotency_key(request_from_item(item, index)),
            namespace,
            prefix=f"tasks[{index}].",
        )
        for index, item in enumerate(items)
    ]
    return pb.SubmitTasksRequest(tasks=specs)


def _states(states: Iterable[TaskState | str] | None) -> list[str]:
    if states is None:
        return []
    if isinstance(states, str):
        states = [states]
    values: list[str] = []
    for state in states:
        try:
            values.append(TaskState(state).value)
        except ValueError:
            raise InvalidArgumentError(f"states: unknown task state {state!r}") from None
    return values


def _page_size(page_size: int) -> int:
    if isinstance(page_size, bool) or not isinstance(page_size, int) or page_size < 1:
        raise InvalidArgumentError(f"page_size: must be a positive integer, got {page_size!r}")
    return page_size


def list_tasks_request(
    namespace: str,
    queue: str | None,
    states: Iterable[TaskState | str] | None,
    page_size: int,
    page_token: str | None,
) -> pb.ListTasksRequest:
    """A ListTasks request for one page."""
    return pb.ListTasksRequest(
        namespace=namespace,
        queue=queue or "",
        states=_states(states),
        page_size=_page_size(page_size),
        page_token=page_token or "",
    )


def list_dead_letters_request(
    namespace: str, queue: str, page_size: int, page_token: str | None
) -> pb.ListDeadLettersRequest:
    """A ListDeadLetters request for one page."""
    return pb.ListDeadLettersRequest(
        namespace=namespace,
        queue=queue,
        page_size=_page_size(page_size),
        page_token=page_token or "",
    )


def replay_request(
    namespace: str, queue: str, task_ids: Sequence[str] | None
) -> pb.ReplayDeadLettersRequest:
    """A ReplayDeadLetters request; no ids means every dead-lettered task of the queue."""
    if isinstance(task_ids, str):
        raise InvalidArgumentError("task_ids: must be a list of task ids, not one string")
    return pb.ReplayDeadLettersRequest(
        namespace=namespace, queue=queue, task_ids=list(task_ids or [])
    )


# -- schedules --------------------------------------------------------------------------------


def list_schedules_request(
    namespace: str, page_size: int, page_token: str | None
) -> pb.ListSchedulesRequest:
    """A ListSchedules request for one page (``namespace=""``: every namespace)."""
    return pb.ListSchedulesRequest(
        namespace=namespace, page_size=_page_size(page_size), page_token=page_token or ""
    )
