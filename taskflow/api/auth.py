"""Bearer-token authentication for every RPC except health checks and reflection."""

from __future__ import annotations

import hmac
from typing import Any

import grpc
from grpc import aio

from taskflow.api.types import Context, Continuation, Handler

#: Services anyone may call: probes and tooling must work without the token.
OPEN_SERVICES = (
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.ServerReflection/",
)


def bearer_token(metadata: Any) -> str | None:
    """The token of an ``authorization: Bearer <token>`` entry, if any."""
    for key, value in metadata or ():
        if key.lower() == "authorization":
            text = value.decode() if isinstance(value, bytes) else str(value)
            scheme, _, token = text.strip().partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    return None


def _rejecting(handler: Handler, details: str) -> Handler:
    """A handler of the same kind as ``handler`` that answers UNAUTHENTICATED."""

    async def reject(request: Any, context: Context) -> None:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, details)

    build = {
        (False, False): grpc.unary_unary_rpc_method_handler,
        (False, True): grpc.unary_stream_rpc_method_handler,
        (True, False): grpc.stream_unary_rpc_method_handler,
        (True, True): grpc.stream_stream_rpc_method_handler,
    }[(handler.request_streaming, handler.response_streaming)]
    return build(
        reject,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


class TokenAuthInterceptor(aio.ServerInterceptor):  # type: ignore[type-arg]
    """Rejects calls without ``authorization: Bearer <token>`` when a token is configured."""

    def __init__(self, token: str) -> None:
        self._token = token.encode()

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> Handler:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or not self._token or method.startswith(OPEN_SERVICES):
            return handler
        given = bearer_token(handler_call_details.invocation_metadata)
        if given is None:
            return _rejecting(handler, "missing metadata 'authorization: Bearer <token>'")
        if not hmac.compare_digest(given.encode(), self._token):
            return _rejecting(handler, "invalid token")
        return handler
