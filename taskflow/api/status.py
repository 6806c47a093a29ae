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
    Unavailable,
)

log = logging.getLogger("taskflow.api")

S = TypeVar("S")
Req = TypeVar("Req")
Resp = TypeVar("Resp")


def status_for(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """The status code and details a client sees for ``exc``."""
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
