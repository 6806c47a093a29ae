"""The API server's spans: one SERVER span per unary ``TaskService`` call, a child of the
caller's context (W3C ``traceparent`` metadata). During a ``Submit*`` call the span's context
is what each created task carries (``tracing.stamp``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
from grpc import aio

from taskflow.api.types import Context, Continuation, Handler
from taskflow.telemetry import tracing

SERVICE = "taskflow.v1.TaskService"
PREFIX = f"/{SERVICE}/"
SUBMISSIONS = frozenset({"SubmitTask", "SubmitTasks", "SubmitDag"})


def tracing_interceptors() -> list[aio.ServerInterceptor]:  # type: ignore[type-arg]
    """The interceptors to install: none unless tracing is on in this process."""
    return [TracingInterceptor()] if tracing.enabled() else []


class TracingInterceptor(aio.ServerInterceptor):  # type: ignore[type-arg]
    def __init__(self) -> None:
        from opentelemetry import trace

        self._tracer = trace.get_tracer("taskflow.api")

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> Handler:
        handler = await continuation(handler_call_details)
        full = handler_call_details.method
        if handler is None or handler.unary_unary is None or not full.startswith(PREFIX):
            return handler
        method = full.removeprefix(PREFIX)
        metadata = {
            k: v if isinstance(v, str) else v.decode()
            for k, v in (handler_call_details.invocation_metadata or ())
        }
        return grpc.unary_unary_rpc_method_handler(
            self._traced(method, metadata, handler.unary_unary),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    def _traced(
        self, method: str, metadata: dict[str, str], behavior: Callable[..., Any]
    ) -> Callable[..., Any]:
        from opentelemetry import propagate
        from opentelemetry.trace import SpanKind, Status, StatusCode

        tracer = self._tracer

        async def traced(request: Any, context: Context) -> Any:
            parent = propagate.extract(metadata)
            with tracer.start_as_current_span(
                f"{SERVICE}/{method}",
                context=parent,
                kind=SpanKind.SERVER,
                attributes={"rpc.system": "grpc", "rpc.service": SERVICE, "rpc.method": method},
            ) as span:
                token = None
                if method in SUBMISSIONS:
                    carrier: dict[str, str] = {}
                    propagate.inject(carrier)
                    if "traceparent" in carrier:
                        incoming = metadata.get("traceparent")
                        token = tracing.submitting(incoming, carrier["traceparent"])
                try:
                    response = await behavior(request, context)
                finally:
                    if token is not None:
                        tracing.done_submitting(token)
                    code = context.code()
                    if isinstance(code, grpc.StatusCode) and code is not grpc.StatusCode.OK:
                        span.set_attribute("rpc.grpc.status_code", code.value[0])
                        span.set_status(Status(StatusCode.ERROR, code.name))
                return response

        return traced
