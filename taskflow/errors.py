"""Domain errors, mapped to gRPC status codes once, at the API boundary."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import psycopg
import redis.exceptions


class TaskFlowError(Exception):
    """Base class of every error the engine raises on purpose."""


class InvalidArgument(TaskFlowError):
    """A request field is missing or wrong. ``field`` names it, ``problem`` says why."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class NotFound(TaskFlowError):
    """The named object does not exist."""


class AlreadyExists(TaskFlowError):
    """The object exists already and the request may not take it over."""


class Unavailable(TaskFlowError):
    """PostgreSQL or Redis cannot be reached; the caller may retry."""


class Unauthenticated(TaskFlowError):
    """No token, or one the server does not know."""


class PermissionDenied(TaskFlowError):
    """The caller's token lacks the role or the namespace the call needs."""


class RateLimited(TaskFlowError):
    """The caller submitted faster than its token allows; ``retry_after`` is in seconds
    (``inf``: the request is larger than the token's burst and can never pass as one)."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PayloadTooLarge(TaskFlowError):
    """A payload exceeds the configured limit."""

    def __init__(self, field: str, size: int, limit: int) -> None:
        super().__init__(f"{field}: {size} bytes exceeds the limit of {limit} bytes")
        self.field = field
        self.size = size
        self.limit = limit


#: What a store raises when it cannot be reached or is going away: worth waiting out.
STORE_ERRORS: tuple[type[BaseException], ...] = (
    psycopg.OperationalError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    OSError,
)


@contextlib.contextmanager
def unavailable(store: str) -> Iterator[None]:
    """Turn a store's connection errors into ``Unavailable`` naming it (the one place where
    that mapping happens; the API maps ``Unavailable`` to UNAVAILABLE)."""
    try:
        yield
    except STORE_ERRORS as exc:
        raise Unavailable(f"{store}: {exc}") from exc
