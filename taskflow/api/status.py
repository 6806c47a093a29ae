"""The one place engine errors become gRPC status codes."""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import NoReturn, TypeVar

import grpc
from grpc import aio

from taskflow.api.types import Context
from taskflow.errors import (
    STORE_ERRORS,
    AlreadyExists,
    InvalidArgument,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    RateLimited,
    Unauthenticated,
    Unavailable,
)

log = logging.getLogger("taskflow.api")

#: Trailing metadata of a RESOURCE_EXHAUSTED answer: milliseconds until the call can pass.
RETRY_AFTER_KEY = "retry-after-ms"

#: Longest status message sent: a hostile request never gets its own input echoed back whole.
MAX_DETAILS_CHARS = 1024

S = TypeVar("S")
Req = TypeVar("Req")
Resp = TypeVar("Resp")


def bounded(details: str, limit: int = MAX_DETAILS_CHARS) -> str:
    """``details`` cut to ``limit`` characters, saying how much was cut."""
    if len(details) <= limit:
        return details
    return f"{details[: limit - 40]}... ({len(details) - limit + 40} more characters)"


def status_for(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """The status code and details a client sees for ``exc`` (bounded in length)."""
    code, details = _status_for(exc)
    return code, bounded(details)


def _status_for(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    if isinstance(exc, Unauthenticated):
        return grpc.StatusCode.UNAUTHENTICATED, str(exc)
    if isinstance(exc, PermissionDenied):
        return grpc.StatusCode.PERMISSION_DENIED, str(exc)
    if isinstance(exc, RateLimited):
        return grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc)
    if isinstance(exc, InvalidArgument | PayloadTooLarge):
        return grpc.StatusCode.INVALID_ARGUMENT, str(exc)
    if isinstance(exc, NotFound):
        return grpc.StatusCode.NOT_FOUND, str(exc)
    if isinstance(exc, AlreadyExists):
        return grpc.StatusCode.ALREADY_EXISTS, str(exc)
    if isinstance(exc, Unavailable):
        return grpc.StatusCode.UNAVAILABLE, str(exc)
    if isinstance(exc, STORE_ERRORS):
        return grpc.StatusCode.UNAVAILABLE, f"storage unavailable: {exc}"
    return grpc.StatusCode.INTERNAL, "internal error; see the server log"


async def _abort(context: Context, method: str, exc: Exception) -> NoReturn:
    code, details = status_for(exc)
    if isinstance(exc, RateLimited) and exc.retry_after != float("inf"):
        context.set_trailing_metadata(((RETRY_AFTER_KEY, str(int(exc.retry_after * 1000) + 1)),))
    if code == grpc.StatusCode.INTERNAL:
        log.error("%s failed", method, exc_info=exc)
    await context.abort(code, details)


def unary(
    fn: Callable[[S, Req, Context], Awaitable[Resp]],
) -> Callable[[S, Req, Context], Awaitable[Resp]]:
    """Map the errors of a unary RPC method to status codes."""

    @functools.wraps(fn)
    async def wrapper(self: S, request: Req, context: Context) -> Resp:
        try:
            return await fn(self, request, context)
        except aio.AbortError:
            raise
        except Exception as exc:
            await _abort(context, fn.__name__, exc)

    return wrapper


def streaming(
    fn: Callable[[S, Req, Context], AsyncIterator[Resp]],
) -> Callable[[S, Req, Context], AsyncIterator[Resp]]:
    """Map the errors of a server-streaming RPC method to status codes."""

    @functools.wraps(fn)
    async def wrapper(self: S, request: Req, context: Context) -> AsyncIterator[Resp]:
        try:
            async for item in fn(self, request, context):
                yield item
        except aio.AbortError:
            raise
        except Exception as exc:
            await _abort(context, fn.__name__, exc)

    return wrapper
