"""A worker process's ``/metrics``: its slots (read from the worker at each scrape) and the
task metrics of the process (``taskflow.telemetry.metrics``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from taskflow.telemetry.metrics import process_metrics

if TYPE_CHECKING:
    from taskflow_worker.runtime import Worker


class WorkerCollector(Collector):
    """Gauges of one worker, computed when scraped (nothing is updated per task)."""

    def __init__(self, worker: Worker) -> None:
        self._worker = worker

    def collect(self) -> Iterator[Metric]:
        w = self._worker
        yield GaugeMetricFamily(
            "taskflow_worker_concurrency", "Handler slots of this worker.", w.config.concurrency
        )
        yield GaugeMetricFamily(
            "taskflow_worker_in_flight",
            "Slots taken: claims whose handler has not stopped yet (abandoned ones included).",
            len(w.inflight),
        )
        yield GaugeMetricFamily(
            "taskflow_worker_abandoned",
            "Handlers whose task is over (timed out, cancelled, lease lost) that still run, "
            "each holding its slot and, for a sync handler, its thread.",
            w.abandoned,
        )
        yield GaugeMetricFamily(
            "taskflow_worker_draining", "1 while the worker drains (SIGTERM).", int(w.draining)
        )
        yield CounterMetricFamily(
            "taskflow_worker_claims", "Claims this worker started.", w.claimed_total
        )


class WorkerMetrics:
    def __init__(self, worker: Worker) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(WorkerCollector(worker))

    def render(self) -> bytes:
        return generate_latest(self.registry) + process_metrics().render()
