"""The operator's own settings (the engine's come from ``taskflow.config.Settings``)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class OperatorConfig:
    """Every field has a default that works in a cluster; flags and env override them."""

    #: kubeconfig to use; None means the pod's service account (in-cluster).
    kubeconfig: Path | None = None
    #: Namespaces to serve; empty means every namespace (cluster-wide).
    namespaces: tuple[str, ...] = ()
    #: ``/metrics`` and ``/v1/backlog/<ns>/<queue>`` (KEDA's metrics-api trigger); 0 disables.
    http_port: int = 8090
    #: Where the HTTP endpoints listen: loopback unless told (a pod sets ``0.0.0.0``).
    http_host: str = "127.0.0.1"
    #: kopf's liveness endpoint, e.g. ``http://0.0.0.0:8081/healthz``; empty disables.
    liveness_endpoint: str = "http://127.0.0.1:8081/healthz"
    #: How KEDA reaches this operator's HTTP port (``engine: keda`` only).
    public_url: str = field(
        default_factory=lambda: os.environ.get(
            "TASKFLOW_OPERATOR_URL", "http://taskflow-operator.taskflow.svc:8090"
        )
    )
    #: kopf peering: operators sharing a name elect one active leader.
    peering_name: str = "taskflow"
    standalone: bool = False
    #: None: by start time, so that of identical replicas the one running longest leads.
    priority: int | None = None
    #: How often the status of every unfinished Task is compared with the engine (one query).
    task_poll_seconds: float = 2.0
    #: PostgreSQL connections of the Task mirror, apart from the pool submits use.
    mirror_pool_size: int = 2
    #: Timeout of one worker pod's ``/healthz`` probe (in-flight count for deletion cost).
    pod_probe_timeout: float = 0.5
    #: Run housekeeping (lease reclaim, delayed promotion, Redis rebuild, retention).
    housekeeping: bool = True
