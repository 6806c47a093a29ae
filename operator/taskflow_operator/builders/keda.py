"""A KEDA ``ScaledObject`` for ``autoscaling.engine: keda``.

The trigger is ``metrics-api``: KEDA polls the operator's ``/v1/backlog/<ns>/<queue>``
endpoint, which answers ``{"backlog": N, ...}`` from the engine's queue statistics. KEDA's
``redis`` trigger cannot be used: it measures a list's length, while a TaskFlow queue is a set
of sorted sets and hashes whose backlog (ready + running + due delayed) no single Redis
command returns.
"""

from __future__ import annotations

import math
from typing import Any

from taskflow_operator.builders.common import Owner, labels, workers_name
from taskflow_operator.crd.taskqueue import TaskQueueSpec

KEDA_GROUP = "keda.sh"
KEDA_VERSION = "v1alpha1"
SCALED_OBJECTS = "scaledobjects"


def backlog_url(base_url: str, owner: Owner) -> str:
    return f"{base_url.rstrip('/')}/v1/backlog/{owner.namespace}/{owner.name}"


def scaled_object(owner: Owner, spec: TaskQueueSpec, base_url: str) -> dict[str, Any]:
    auto = spec.autoscaling
    return {
        "apiVersion": f"{KEDA_GROUP}/{KEDA_VERSION}",
        "kind": "ScaledObject",
        "metadata": {
            "name": workers_name(owner.name),
            "namespace": owner.namespace,
            "labels": labels(owner.name),
            "ownerReferences": [owner.reference()],
        },
        "spec": {
            "scaleTargetRef": {"name": workers_name(owner.name)},
            "minReplicaCount": spec.replicas.min,
            "maxReplicaCount": spec.replicas.max,
            "pollingInterval": max(1, math.ceil(auto.poll_interval_seconds)),
            "cooldownPeriod": max(1, math.ceil(auto.scale_down_stabilization_seconds)),
            "advanced": {
                "horizontalPodAutoscalerConfig": {
                    "behavior": {
                        "scaleDown": {
                            "stabilizationWindowSeconds": math.ceil(
                                auto.scale_down_stabilization_seconds
                            )
                        }
                    }
                }
            },
            "triggers": [
                {
                    "type": "metrics-api",
                    "metricType": "AverageValue",
                    "metadata": {
                        "url": backlog_url(base_url, owner),
                        "format": "json",
                        "valueLocation": "backlog",
                        "targetValue": str(spec.target_per_pod),
                        "activationTargetValue": "0",
                    },
                }
            ],
        },
    }
