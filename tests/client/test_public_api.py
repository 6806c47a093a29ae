"""The exported names of taskflow_client are a promise: changing them is a deliberate act."""

from __future__ import annotations

import inspect

import taskflow_client
from taskflow_client import AsyncClient, Client

EXPORTED = [
    "TERMINAL_STATES",
    "AlreadyExistsError",
    "AsyncClient",
    "Attempt",
    "Client",
    "ConcurrencyPolicy",
    "DagRun",
    "DagRunState",
    "DagStepInfo",
    "DeadlineExceededError",
    "Flow",
    "InvalidArgumentError",
    "NotFoundError",
    "PermissionDeniedError",
    "QueueStats",
    "ResourceExhaustedError",
    "RetryPolicy",
    "Schedule",
    "Step",
    "StepState",
    "Task",
    "TaskFlowError",
    "TaskFlowTimeoutError",
    "TaskRequest",
    "TaskState",
    "UnauthenticatedError",
    "UnavailableError",
    "__version__",
    "chain",
    "group",
]

METHODS = [
    "cancel",
    "cancel_dag",
    "close",
    "dead_letters",
    "delete_schedule",
    "get",
    "get_dag",
    "get_schedule",
    "list_dags",
    "list_schedules",
    "list_tasks",
    "list_tasks_page",
    "put_schedule",
    "queue_stats",
    "queues",
    "replay",
    "resume_schedule",
    "retry_dag",
    "submit",
    "submit_dag",
    "submit_many",
    "suspend_schedule",
    "wait",
    "wait_dag",
    "watch",
    "watch_dag",
]


def test_exported_names_are_pinned() -> None:
    assert taskflow_client.__all__ == EXPORTED


def test_every_exported_name_exists() -> None:
    for name in taskflow_client.__all__:
        assert hasattr(taskflow_client, name), name


def test_errors_share_one_base() -> None:
    errors = [
        getattr(taskflow_client, n)
        for n in EXPORTED
        if n.endswith("Error") and n != "TaskFlowError"
    ]
    for error in errors:
        assert issubclass(error, taskflow_client.TaskFlowError), error
    assert issubclass(taskflow_client.TaskFlowTimeoutError, TimeoutError)


def _public_methods(cls: type) -> list[str]:
    return sorted(
        n for n, _ in inspect.getmembers(cls, inspect.isfunction) if not n.startswith("_")
    )


def test_sync_and_async_clients_have_the_same_methods() -> None:
    assert _public_methods(Client) == METHODS
    assert _public_methods(AsyncClient) == METHODS


CONSTRUCTOR = [
    "target",
    "token",
    "namespace",
    "timeout",
    "retry_budget",
    "retries",
    "credentials",
    "tls",
    "ca",
    "cert",
    "key",
]


def test_constructor_arguments_are_pinned() -> None:
    assert list(inspect.signature(Client).parameters) == CONSTRUCTOR
    assert list(inspect.signature(AsyncClient).parameters) == CONSTRUCTOR


def test_sync_and_async_methods_take_the_same_arguments() -> None:
    for name in METHODS:
        sync = inspect.signature(getattr(Client, name))
        async_ = inspect.signature(getattr(AsyncClient, name))
        assert list(sync.parameters) == list(async_.parameters), name
    assert list(inspect.signature(Client).parameters) == list(
        inspect.signature(AsyncClient).parameters
    )
