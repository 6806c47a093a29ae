"""The exception tree of the client, and the one place gRPC errors are translated into it."""

from __future__ import annotations

import re

import grpc

__all__ = [
    "AlreadyExistsError",
    "DeadlineExceededError",
    "InvalidArgumentError",
    "NotFoundError",
    "ResourceExhaustedError",
    "TaskFlowError",
    "TaskFlowTimeoutError",
    "UnauthenticatedError",
    "UnavailableError",
    "from_rpc_error",
    "status_of",
]

_FIELD_RE = re.compile(r"^(?P<field>[A-Za-z_][A-Za-z0-9_.\[\]]*): (?P<problem>.+)$", re.DOTALL)


class TaskFlowError(Exception):
    """Base of every error the client raises.

    ``code`` is the gRPC status code the server answered with (or, for errors the client
    detects itself, the code the server would have used); ``details`` is its message.
    """

    default_code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(self, details: str, code: grpc.StatusCode | None = None) -> None:
        super().__init__(details)
        self.details = details
        self.code = code if code is not None else self.default_code

    def __str__(self) -> str:
        return f"{self.details} ({self.code.name})"


class InvalidArgumentError(TaskFlowError, ValueError):
    """The request was rejected as malformed.

    ``field`` names the offending field when the message has the form ``<field>: <problem>``
    (for example ``payload`` or ``tasks[2].queue``), else it is ``None``.
    """

    default_code = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(self, details: str, code: grpc.StatusCode | None = None) -> None:
        super().__init__(details, code)
        match = _FIELD_RE.match(details)
        self.field: str | None = match.group("field") if match else None


class NotFoundError(TaskFlowError, LookupError):
    """The task or queue does not exist."""

    default_code = grpc.StatusCode.NOT_FOUND


class AlreadyExistsError(TaskFlowError):
    """The object to create exists already."""

    default_code = grpc.StatusCode.ALREADY_EXISTS


class UnavailableError(TaskFlowError):
    """The server could not be reached, also after the client's retries."""

    default_code = grpc.StatusCode.UNAVAILABLE


class UnauthenticatedError(TaskFlowError):
    """The token is missing, wrong, or does not allow the call."""

    default_code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDeniedError(UnauthenticatedError):
    """The token is valid but may not make this call: it lacks the role, or the namespace is
    not one of its namespaces. A subclass of ``UnauthenticatedError``, which it used to be."""

    default_code = grpc.StatusCode.PERMISSION_DENIED


class ResourceExhaustedError(TaskFlowError):
    """A limit was exceeded, for example the payload is larger than the server accepts, or the
    token's submission rate: then ``retry_after`` is the seconds to wait (else ``None``)."""

    default_code = grpc.StatusCode.RESOURCE_EXHAUSTED
    retry_after: float | None = None


class DeadlineExceededError(TaskFlowError):
    """The server did not answer one call within the client's per-call timeout."""

    default_code = grpc.StatusCode.DEADLINE_EXCEEDED


class TaskFlowTimeoutError(TaskFlowError, TimeoutError):
    """A client-side wait (``Client.wait``) ran out of time before the task finished."""

    default_code = grpc.StatusCode.DEADLINE_EXCEEDED


_BY_CODE: dict[grpc.StatusCode, type[TaskFlowError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExistsError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
    grpc.StatusCode.UNAUTHENTICATED: UnauthenticatedError,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDeniedError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhaustedError,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceededError,
}


def status_of(error: grpc.RpcError) -> tuple[grpc.StatusCode, str]:
    """The status code and message of a failed call (UNKNOWN when the error carries none)."""
    code_fn = getattr(error, "code", None)
    details_fn = getattr(error, "details", None)
    code = code_fn() if callable(code_fn) else None
    details = details_fn() if callable(details_fn) else None
    if not isinstance(code, grpc.StatusCode):
        code = grpc.StatusCode.UNKNOWN
    return code, details if isinstance(details, str) else ""


def from_rpc_error(error: grpc.RpcError, note: str | None = None) -> TaskFlowError:
    """Translate a gRPC error into the matching ``TaskFlowError`` subclass; ``note`` is
    appended to its details in parentheses."""
    code, details = status_of(error)
    cls = _BY_CODE.get(code, TaskFlowError)
    details = details or code.name.lower().replace("_", " ")
    translated = cls(f"{details} ({note})" if note else details, code)
    if isinstance(translated, ResourceExhaustedError):
        translated.retry_after = _retry_after(error)
    return translated


def _retry_after(error: grpc.RpcError) -> float | None:
    """Seconds of the ``retry-after-ms`` trailer of a rate-limited call, if any."""
    trailers = getattr(error, "trailing_metadata", None)
    try:
        for key, value in (trailers() if callable(trailers) else None) or ():
            if key == "retry-after-ms":
                return int(value) / 1000
    except (TypeError, ValueError):
        return None
    return None
