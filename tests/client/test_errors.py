"""gRPC status codes become TaskFlowError subclasses, mapped once at the client boundary."""

from __future__ import annotations

import grpc
import pytest

from taskflow_client import (
    AlreadyExistsError,
    DeadlineExceededError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    ResourceExhaustedError,
    TaskFlowError,
    UnauthenticatedError,
    UnavailableError,
)

from .clients import AnyClient, MakeClient
from .fake_server import FakeServer

MAPPING = [
    (grpc.StatusCode.INVALID_ARGUMENT, InvalidArgumentError),
    (grpc.StatusCode.NOT_FOUND, NotFoundError),
    (grpc.StatusCode.ALREADY_EXISTS, AlreadyExistsError),
    (grpc.StatusCode.UNAVAILABLE, UnavailableError),
    (grpc.StatusCode.UNAUTHENTICATED, UnauthenticatedError),
    (grpc.StatusCode.PERMISSION_DENIED, PermissionDeniedError),  # an UnauthenticatedError too
    (grpc.StatusCode.RESOURCE_EXHAUSTED, ResourceExhaustedError),
    (grpc.StatusCode.DEADLINE_EXCEEDED, DeadlineExceededError),
    (grpc.StatusCode.INTERNAL, TaskFlowError),
    (grpc.StatusCode.FAILED_PRECONDITION, TaskFlowError),
]


@pytest.mark.parametrize(("code", "error"), MAPPING)
def test_status_code_maps_to_error_class(
    fake: FakeServer, make_client: MakeClient, code: grpc.StatusCode, error: type[TaskFlowError]
) -> None:
    # retries=1: UNAVAILABLE and DEADLINE_EXCEEDED would otherwise be retried.
    fake.service.fail_next("GetTask", code, "the details")
    client = make_client(fake.target, retries=1)
    with pytest.raises(error) as caught:
        client.get("t-0001")
    assert type(caught.value) is error
    assert caught.value.code == code
    assert caught.value.details == "the details"


def test_invalid_argument_names_the_field_from_the_server(client: AnyClient) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        client.submit("", "send_email")
    assert caught.value.field == "queue"
    assert caught.value.details == "queue: required"


def test_invalid_argument_of_one_item_of_a_batch(client: AnyClient) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        client.submit_many([{"queue": "q", "handler": "h"}, {"queue": "q", "handler": ""}])
    assert caught.value.field == "tasks[1].handler"


@pytest.mark.parametrize(
    ("details", "field"),
    [
        ("payload: must be an object", "payload"),
        ("tasks[3].run_at: in the past", "tasks[3].run_at"),
        ("retry.max_seconds: must be >= initial_seconds", "retry.max_seconds"),
        ("the request is malformed", None),
        ("", None),
    ],
)
def test_field_parsing(details: str, field: str | None) -> None:
    assert InvalidArgumentError(details).field == field


def test_missing_task_is_not_found(client: AnyClient) -> None:
    with pytest.raises(NotFoundError, match="t-9999"):
        client.get("t-9999")


def test_wrong_token_is_unauthenticated(make_client: MakeClient) -> None:
    from .fake_server import running_fake_server

    with running_fake_server(required_token="right") as fake:
        with pytest.raises(UnauthenticatedError):
            make_client(fake.target, token="wrong").queue_stats("emails")
        assert make_client(fake.target, token="right").queue_stats("emails").queue == "emails"


def test_error_message_shows_details_and_code() -> None:
    error = NotFoundError("task t-1 not found")
    assert str(error) == "task t-1 not found (NOT_FOUND)"
    assert error.code == grpc.StatusCode.NOT_FOUND


def test_permission_denied_is_still_caught_as_unauthenticated() -> None:
    error = PermissionDeniedError("token 'reader' lacks the role 'submit'")
    assert isinstance(error, UnauthenticatedError)
    assert error.code == grpc.StatusCode.PERMISSION_DENIED
