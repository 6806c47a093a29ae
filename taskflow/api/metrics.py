"""Prometheus metrics of one API server, in its own registry."""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from typing import Any

import grpc
from grpc import aio
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from taskflow.api.types import Context, Continuation, Handler
from taskflow.models import QueueStats, SubmitResult, TaskSubmission
from taskflow.telemetry.metrics import process_metrics

log = logging.getLogger("taskflow.api.metrics")

#: Only the task service is measured per RPC; probes and reflection are not.
MEASURED_PREFIX = "/taskflow.v1.TaskService/"

ListQueues = Callable[[], Awaitable[list[QueueStats]]]


class QueueCollector(Collector):
    """Queue gauges from the last snapshot taken by ``refresh`` (called on every scrape)."""

    def __init__(self, list_queues: ListQueues, timeout: float = 5.0) -> None:
        self._list_queues = list_queues
        self._timeout = timeout
        self._queues: list[QueueStats] = []
        self._ok = False
        self._lock = asyncio.Lock()

    async def refresh(self) -> None:
        async with self._lock:
            try:
                async with asyncio.timeout(self._timeout):
                    self._queues = await self._list_queues()
                self._ok = True
            except Exception as exc:
                log.warning("queue statistics unavailable for /metrics: %s", exc)
                self._queues, self._ok = [], False

    def collect(self) -> Iterator[Metric]:
        labels = ["namespace", "queue"]
        gauges = {
            field: GaugeMetricFamily(f"taskflow_queue_{field}", help_text, labels=labels)
            for field, help_text in (
                ("ready", "Tasks waiting to be claimed now."),
                ("scheduled", "Tasks delayed or waiting for a retry."),
                ("running", "Tasks claimed by a worker."),
                ("backlog", "What autoscaling looks at: ready + running + due delayed tasks."),
                ("dead_letters", "Tasks failed for good, listed in the dead-letter view."),
            )
        }
        for q in self._queues:
            for field, gauge in gauges.items():
                gauge.add_metric([q.namespace, q.queue], getattr(q, field))
        yield from gauges.values()
        yield GaugeMetricFamily(
            "taskflow_queue_stats_up",
            "1 when the queue gauges could be read from Redis at this scrape.",
            value=1 if self._ok else 0,
        )


class ApiMetrics:
    def __init__(self, list_queues: ListQueues) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "taskflow_api_requests",
            "RPCs handled, by method and status code.",
            ["method", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "taskflow_api_request_duration_seconds",
            "RPC handling time, by method and status code.",
            ["method", "code"],
            registry=self.registry,
        )
        self.submitted = Counter(
            "taskflow_tasks_submitted",
            "Tasks accepted by SubmitTask(s) (idempotent resubmissions, DAG steps and cron "
            "fires not counted).",
            ["namespace", "queue", "handler"],
            registry=self.registry,
        )
        self._submitted: dict[tuple[str, str, str], Counter] = {}  # labelled children
        self.queues = QueueCollector(list_queues)
        self.registry.register(self.queues)

    def observe(self, method: str, code: grpc.StatusCode, seconds: float) -> None:
        self.requests.labels(method, code.name).inc()
        self.latency.labels(method, code.name).observe(seconds)

    def on_submit(self, specs: Sequence[TaskSubmission], results: Sequence[SubmitResult]) -> None:
        cache = self._submitted
        for spec, result in zip(specs, results, strict=True):
            if result.created:
                key = (spec.namespace, spec.queue, spec.handler)
                child = cache.get(key)
                if child is None:
                    child = cache[key] = self.submitted.labels(*key)
                child.inc()

    async def render(self) -> bytes:
        await self.queues.refresh()
        return generate_latest(self.registry) + process_metrics().render()


def _code(context: Context, error: BaseException | None) -> grpc.StatusCode:
    if error is None:
        return grpc.StatusCode.OK
    if isinstance(error, asyncio.CancelledError | GeneratorExit):
        return grpc.StatusCode.CANCELLED
    code = context.code()
    return code if isinstance(code, grpc.StatusCode) else grpc.StatusCode.UNKNOWN


class MetricsInterceptor(aio.ServerInterceptor):  # type: ignore[type-arg]
    """Counts and times every TaskService RPC by its final status code."""

    def __init__(self, metrics: ApiMetrics) -> None:
        self._metrics = metrics

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> Handler:
        handler = await continuation(handler_call_details)
        full = handler_call_details.method
        if handler is None or not full.startswith(MEASURED_PREFIX):
            return handler
        method = full.removeprefix(MEASURED_PREFIX)
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._unary(method, handler.unary_unary),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._stream(method, handler.unary_stream),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler

    def _unary(self, method: str, behavior: Callable[..., Any]) -> Callable[..., Any]:
        async def measured(request: Any, context: Context) -> Any:
            start = time.perf_counter()
            error: BaseException | None = None
            try:
                return await behavior(request, context)
            except BaseException as exc:
                error = exc
                raise
            finally:
                self._metrics.observe(method, _code(context, error), time.perf_counter() - start)

        return measured

    def _stream(self, method: str, behavior: Callable[..., Any]) -> Callable[..., Any]:
        async def measured(request: Any, context: Context) -> AsyncIterator[Any]:
            start = time.perf_counter()
            error: BaseException | None = None
            try:
                responses = behavior(request, context)
                if inspect.isawaitable(responses):  # a handler writing via context.write
                    await responses
                else:
                    async for item in responses:
                        yield item
            except BaseException as exc:
                error = exc
                raise
            finally:
                self._metrics.observe(method, _code(context, error), time.perf_counter() - start)

        return measured
