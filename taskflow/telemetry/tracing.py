"""OpenTelemetry tracing (the ``tracing`` extra; off by default).

It is on in a process when ``--tracing`` is given or the standard ``OTEL_*`` environment asks
for traces (``OTEL_TRACES_EXPORTER`` other than ``none``, or an ``OTEL_EXPORTER_OTLP_*``
endpoint); ``setup_tracing`` then installs a tracer provider that exports over OTLP (or to the
console with ``OTEL_TRACES_EXPORTER=console``), unless the application installed one first.

The trace context of a submission travels with each task it creates, in the label
``taskflow.dev/traceparent`` (and from there in the dispatch blob): the API server's span for
a ``Submit*`` call is a child of the client's span (gRPC metadata ``traceparent``), and the
worker's span of each attempt is a child of the API server's span (of the client's, when the
API server does not trace). DAG steps carry the run's submission context the same way.

Nothing here imports OpenTelemetry until tracing is switched on.
"""

from __future__ import annotations

import contextvars
import logging
import os
from collections.abc import Mapping
from typing import Any

from taskflow.models import TRACEPARENT_LABEL

log = logging.getLogger("taskflow.tracing")

__all__ = ["TRACEPARENT_LABEL", "TracingUnavailable", "enabled", "setup_tracing", "stamp"]

#: During a ``Submit*`` RPC of a tracing API server: (the caller's traceparent, the server
#: span's traceparent). ``stamp`` gives each task spec the server's.
_SUBMITTING: contextvars.ContextVar[tuple[str | None, str] | None] = contextvars.ContextVar(
    "taskflow_submitting", default=None
)
_state = {"enabled": False}


class TracingUnavailable(RuntimeError):
    """Tracing was asked for but the ``tracing`` extra is not installed."""


def wanted(env: Mapping[str, str] | None = None) -> bool:
    """Whether the ``OTEL_*`` environment asks for traces."""
    env = os.environ if env is None else env
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter:
        return exporter != "none"
    return bool(
        env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def enabled() -> bool:
    return _state["enabled"]


def setup_tracing(service_name: str, *, force: bool = False) -> bool:
    """Switch tracing on for this process when ``force`` or the environment asks for it.
    Returns whether it is on. Without the packages, ``force`` raises ``TracingUnavailable``;
    a request from the environment alone logs a warning and leaves tracing off."""
    if _state["enabled"]:
        return True
    if not (force or wanted()):
        return False
    try:
        return _setup(service_name)
    except TracingUnavailable as exc:
        if force:
            raise
        # asked for by the environment only (which may be set for a whole cluster): say so
        # and run without traces rather than not at all
        log.warning("OTEL_* asks for traces but tracing is off: %s", exc)
        return False


def _setup(service_name: str) -> bool:
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
    except ImportError as exc:
        raise TracingUnavailable(
            f"tracing needs the OpenTelemetry packages: pip install 'taskflow[tracing]' ({exc})"
        ) from None
    current = trace.get_tracer_provider()
    if not isinstance(current, TracerProvider):  # the application did not install one
        exporter_name = os.environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() or "otlp"
        exporter: Any
        if exporter_name == "console":
            exporter = ConsoleSpanExporter()
        elif exporter_name in ("otlp", "none"):
            try:
                from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
                    OTLPSpanExporter,
                )
            except ImportError as exc:
                raise TracingUnavailable(
                    "OTLP export needs opentelemetry-exporter-otlp-proto-grpc: "
                    f"pip install 'taskflow[tracing]' ({exc})"
                ) from None
            exporter = OTLPSpanExporter()
        else:
            raise ValueError(
                f"OTEL_TRACES_EXPORTER: {exporter_name!r} is not supported; "
                "use otlp, console or none"
            )
        name = os.environ.get("OTEL_SERVICE_NAME") or service_name
        provider = TracerProvider(resource=Resource.create({"service.name": name}))
        provider.add_span_processor(BatchSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
    _state["enabled"] = True
    log.info("tracing on", extra={"service": service_name})
    return True


def disable_tracing() -> None:
    """Stop tracing new work in this process (the provider stays installed)."""
    _state["enabled"] = False


def stamp(raw: dict[str, Any]) -> None:
    """Give a task spec being submitted the trace context of the API server's span. A label
    the caller set on purpose (not the client's own propagation) is kept."""
    submitting = _SUBMITTING.get()
    if submitting is None:
        return
    incoming, own = submitting
    labels = raw.setdefault("labels", {})
    if labels.get(TRACEPARENT_LABEL) in (None, incoming):
        labels[TRACEPARENT_LABEL] = own


def submitting(incoming: str | None, own: str) -> contextvars.Token[Any]:
    return _SUBMITTING.set((incoming, own))


def done_submitting(token: contextvars.Token[Any]) -> None:
    _SUBMITTING.reset(token)
