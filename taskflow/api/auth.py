"""Bearer-token authentication for every RPC; health checks and reflection may stay open.

The interceptor resolves ``authorization: Bearer <token>`` to a ``Principal`` through the
``TokenRegistry`` and runs the RPC with it bound (``taskflow.api.access.current()``), where the
servicer checks roles and namespaces. Tokens are never logged; they are compared by digest in
constant time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
from grpc import aio

from taskflow.api import access
from taskflow.api.tokens import Principal, TokenRegistry
from taskflow.api.types import Context, Continuation, Handler

#: Services anyone may call unless told otherwise: probes and tooling.
OPEN_SERVICES = (
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.ServerReflection/",
)

_BUILD = {
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}
_BEHAVIOUR = {
    (False, False): "unary_unary",
    (False, True): "unary_stream",
    (True, False): "stream_unary",
    (True, True): "stream_stream",
}


def bearer_token(metadata: Any) -> str | None:
    """The token of an ``authorization: Bearer <token>`` entry, if any."""
    for key, value in metadata or ():
        if key.lower() == "authorization":
            text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
            scheme, _, token = text.strip().partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    return None


class _Undecodable:
    """What a request that is not a valid message deserializes to: the RPC answers
    INVALID_ARGUMENT instead of gRPC's UNKNOWN."""

    def __init__(self, problem: str) -> None:
        self.problem = problem


def _safe(deserializer: Any) -> Any:
    if deserializer is None:
        return None

    def decode(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception as exc:  # DecodeError, and whatever a corrupt message raises
            return _Undecodable(str(exc)[:200] or type(exc).__name__)

    return decode


async def _refuse_undecodable(request: Any, context: Context) -> None:
    if isinstance(request, _Undecodable):
        await context.abort(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"request: not a valid message (corrupt bytes or invalid UTF-8): {request.problem}",
        )


def _kind(handler: Handler) -> tuple[bool, bool]:
    return (handler.request_streaming, handler.response_streaming)


def _rejecting(handler: Handler, details: str) -> Handler:
    """A handler of the same kind as ``handler`` that answers UNAUTHENTICATED."""

    async def reject(request: Any, context: Context) -> None:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, details)

    return _BUILD[_kind(handler)](
        reject,
        request_deserializer=_safe(handler.request_deserializer),
        response_serializer=handler.response_serializer,
    )


def _as(handler: Handler, principal: Principal) -> Handler:
    """``handler`` run with ``principal`` as the caller."""
    kind = _kind(handler)
    behaviour = getattr(handler, _BEHAVIOUR[kind])
    if kind[0]:
        # Client streams (none in TaskService) keep gRPC's own decoding.
        deserializer = handler.request_deserializer

        async def client_stream(request: Any, context: Context) -> Any:
            access.bind(principal)
            return await behaviour(request, context)

        wrapped: Any = client_stream
        if kind[1]:

            async def bidi(request: Any, context: Context) -> AsyncIterator[Any]:
                access.bind(principal)
                inner = behaviour(request, context)
                try:
                    async for item in inner:
                        yield item
                finally:
                    await inner.aclose()

            wrapped = bidi
    elif kind[1]:
        deserializer = _safe(handler.request_deserializer)

        async def stream(request: Any, context: Context) -> AsyncIterator[Any]:
            await _refuse_undecodable(request, context)
            access.bind(principal)
            inner = behaviour(request, context)
            try:
                async for item in inner:
                    yield item
            finally:
                # Closed here, not by the garbage collector: its watch unsubscribes now.
                await inner.aclose()

        wrapped = stream
    else:
        deserializer = _safe(handler.request_deserializer)

        async def unary(request: Any, context: Context) -> Any:
            await _refuse_undecodable(request, context)
            access.bind(principal)
            return await behaviour(request, context)

        wrapped = unary
    return _BUILD[kind](
        wrapped,
        request_deserializer=deserializer,
        response_serializer=handler.response_serializer,
    )


class TokenAuthInterceptor(aio.ServerInterceptor):  # type: ignore[type-arg]
    """Rejects calls without a known ``authorization: Bearer <token>`` when auth is on, and
    runs every accepted call as its token's principal."""

    def __init__(self, registry: TokenRegistry | str, *, open_probes: bool = True) -> None:
        self._registry = (
            registry if isinstance(registry, TokenRegistry) else TokenRegistry(registry)
        )
        self._open = OPEN_SERVICES if open_probes else ()

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> Handler:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or (self._open and method.startswith(self._open)):
            return handler
        if not self._registry.enabled:
            return _as(handler, self._registry.authenticate(None) or access.ANONYMOUS)
        given = bearer_token(handler_call_details.invocation_metadata)
        if given is None:
            return _rejecting(handler, "missing metadata 'authorization: Bearer <token>'")
        principal = self._registry.authenticate(given)
        if principal is None:
            return _rejecting(handler, "invalid token")
        return _as(handler, principal)
