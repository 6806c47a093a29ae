"""OpenTelemetry context propagation, when ``opentelemetry-api`` is installed (optional).

A submission (``submit``, ``submit_many``, ``submit_dag``) runs in a client span, whose W3C
trace context goes with the call (gRPC metadata ``traceparent``, for the API server's span)
and with every task it creates (the label ``taskflow.dev/traceparent``, for the worker's span;
DAG steps included). Other calls carry the current context in their metadata, without a span
of their own. Without OpenTelemetry, or with no span recorded, nothing is added.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

try:
    from opentelemetry import propagate, trace
except ImportError:  # pragma: no cover - exercised where the extra is absent
    propagate = None  # type: ignore[assignment]
    trace = None  # type: ignore[assignment]

__all__ = ["TRACEPARENT_LABEL", "traced"]

#: The task label that carries the trace context to the worker (the engine reads it).
TRACEPARENT_LABEL = "taskflow.dev/traceparent"
SERVICE = "taskflow.v1.TaskService"
SUBMISSIONS = frozenset({"SubmitTask", "SubmitTasks", "SubmitDag"})

Metadata = tuple[tuple[str, str], ...]


def _carrier() -> dict[str, str]:
    carrier: dict[str, str] = {}
    if propagate is not None:
        propagate.inject(carrier)
    return carrier


def _task_specs(method: str, request: Any) -> list[Any]:
    if method == "SubmitTask":
        return [request.task]
    if method == "SubmitTasks":
        return list(request.tasks)
    return [step.task for step in request.dag.steps]


@contextlib.contextmanager
def traced(method: str, request: Any, metadata: Metadata) -> Iterator[Metadata]:
    """The metadata to send ``request`` with; a submission is labelled and spanned."""
    if trace is None:
        yield metadata
        return
    if method not in SUBMISSIONS:
        yield (*metadata, *_carrier().items())
        return
    tracer = trace.get_tracer("taskflow_client")
    attributes = {"rpc.system": "grpc", "rpc.service": SERVICE, "rpc.method": method}
    with tracer.start_as_current_span(
        f"{SERVICE}/{method}", kind=trace.SpanKind.CLIENT, attributes=attributes
    ):
        carrier = _carrier()
        traceparent = carrier.get("traceparent")
        if traceparent:
            for spec in _task_specs(method, request):
                if TRACEPARENT_LABEL not in spec.labels:
                    spec.labels[TRACEPARENT_LABEL] = traceparent
        yield (*metadata, *carrier.items())
