"""The worker's span of each attempt (when tracing is on in this process): a CONSUMER span,
child of the context the task was submitted in (``taskflow.dev/traceparent``, carried in the
dispatch blob). The handler runs with it as the current span, so spans the handler makes are
its children."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from taskflow.models import ClaimedTask, Outcome
from taskflow.telemetry import tracing
from taskflow.worker_session import AttemptEnd


async def traced(claim: ClaimedTask, run: Awaitable[AttemptEnd]) -> AttemptEnd:
    """Await ``run`` (the attempt) inside its span; without tracing, just await it."""
    if not tracing.enabled():
        return await run
    from opentelemetry import trace
    from opentelemetry.trace import SpanKind, Status, StatusCode
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    blob = claim.blob
    parent = None
    if blob.traceparent:
        parent = TraceContextTextMapPropagator().extract({"traceparent": blob.traceparent})
    attributes: dict[str, Any] = {
        "messaging.system": "taskflow",
        "messaging.destination.name": claim.queue.qualified,
        "messaging.message.id": claim.id,
        "taskflow.namespace": claim.queue.namespace,
        "taskflow.queue": claim.queue.name,
        "taskflow.handler": blob.handler,
        "taskflow.task_id": claim.id,
        "taskflow.attempt": claim.attempt,
    }
    if blob.run_id:
        attributes["taskflow.run_id"] = blob.run_id
        attributes["taskflow.step"] = blob.step or ""
    tracer = trace.get_tracer("taskflow.worker")
    with tracer.start_as_current_span(
        f"run {blob.handler}", context=parent, kind=SpanKind.CONSUMER, attributes=attributes
    ) as span:
        end = await run
        span.set_attribute("taskflow.outcome", end.outcome.value)
        if end.outcome is not Outcome.SUCCEEDED:
            span.set_status(Status(StatusCode.ERROR, end.error or end.outcome.value))
        return end
