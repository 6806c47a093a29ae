"""Prometheus metrics of the operator (its own registry: several operators may share a process
in tests) and the HTTP endpoint that serves them plus the per-queue backlog for KEDA."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    generate_latest,
)

from taskflow.errors import Unavailable
from taskflow.keys import QueueRef
from taskflow.models import QueueStats
from taskflow.telemetry.metrics import process_metrics
from taskflow_operator.autoscaler import Decision, Reason

StatsFn = Callable[[QueueRef], Awaitable[QueueStats]]


class OperatorMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        labels = ["namespace", "queue"]
        self.backlog = Gauge(
            "taskflow_operator_queue_backlog",
            "Ready + running + due delayed tasks of a TaskQueue",
            labels,
            registry=self.registry,
        )
        self.desired = Gauge(
            "taskflow_operator_queue_desired_replicas",
            "Worker replicas the autoscaler wants",
            labels,
            registry=self.registry,
        )
        self.scalings = Counter(
            "taskflow_operator_scalings",
            "Replica changes made by the autoscaler",
            ["direction"],
            registry=self.registry,
        )
        self.submissions = Counter(
            "taskflow_operator_task_submissions",
            "Task resources handed to the engine",
            ["outcome"],
            registry=self.registry,
        )
        self.decisions = Counter(
            "taskflow_operator_autoscaler_decisions",
            "Autoscaler decisions, by reason (Steady, BacklogGrew, BacklogShrank, Stabilizing, "
            "Idle, OutOfBounds)",
            ["namespace", "queue", "reason"],
            registry=self.registry,
        )
        self.errors = Counter(
            "taskflow_operator_reconcile_errors",
            "Reconciliations that failed and will be retried",
            ["kind"],
            registry=self.registry,
        )

    def decided(self, namespace: str, queue: str, decision: Decision) -> None:
        self.decisions.labels(namespace, queue, decision.reason.value).inc()

    def forget_queue(self, namespace: str, queue: str) -> None:
        for gauge in (self.backlog, self.desired):
            with contextlib.suppress(KeyError):
                gauge.remove(namespace, queue)
        for reason in Reason:
            with contextlib.suppress(KeyError):
                self.decisions.remove(namespace, queue, reason.value)

    def render(self) -> bytes:
        """The operator's own metrics, then the task metrics of the process (housekeeping)."""
        return generate_latest(self.registry) + process_metrics().render()


def http_app(metrics: OperatorMetrics, stats: StatsFn) -> web.Application:
    async def get_metrics(_: web.Request) -> web.Response:
        return web.Response(body=metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def get_backlog(request: web.Request) -> web.Response:
        ref = QueueRef(request.match_info["namespace"], request.match_info["queue"])
        try:
            s = await stats(ref)
        except Unavailable as exc:
            return web.json_response({"error": str(exc)}, status=503)
        return web.json_response(
            {"backlog": s.backlog, "ready": s.ready, "running": s.running, "due": s.due_delayed}
        )

    app = web.Application()
    app.router.add_get("/metrics", get_metrics)
    app.router.add_get("/v1/backlog/{namespace}/{queue}", get_backlog)
    return app
