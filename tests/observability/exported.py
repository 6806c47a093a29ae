"""Every metric name a TaskFlow process can export, from the registries themselves."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from prometheus_client import CollectorRegistry

from taskflow.api.metrics import ApiMetrics
from taskflow.telemetry.metrics import ProcessMetrics
from taskflow_operator.metrics import OperatorMetrics
from taskflow_worker.metrics import WorkerMetrics

SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "gauge": ("",),
}


async def _no_queues() -> list[Any]:
    return []


def _idle_worker() -> Any:
    return SimpleNamespace(
        config=SimpleNamespace(concurrency=1),
        inflight={},
        abandoned=0,
        draining=False,
        claimed_total=0,
    )


def registries() -> dict[str, CollectorRegistry]:
    return {
        "api": ApiMetrics(_no_queues).registry,
        "process": ProcessMetrics().registry,
        "worker": WorkerMetrics(_idle_worker()).registry,
        "operator": OperatorMetrics().registry,
    }


def exported_names() -> dict[str, str]:
    """Sample name -> its family's type, for every registry."""
    names: dict[str, str] = {}
    for registry in registries().values():
        for family in registry.collect():
            for suffix in SUFFIXES.get(family.type, ("",)):
                names[family.name + suffix] = family.type
    return names
