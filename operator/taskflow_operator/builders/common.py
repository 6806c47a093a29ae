"""Names, labels and owner references shared by every owned object."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from taskflow_operator.crd import API_VERSION

QUEUE_LABEL = "taskflow.dev/queue"
COMPONENT_LABEL = "app.kubernetes.io/component"
MANAGED_BY = "taskflow-operator"
HEALTH_PORT = 8081
DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"
#: On an owned object: the owner's ``metadata.generation`` it was last written from (tells a
#: rollout of a spec edit from the repair of a hand edit).
GENERATION = "taskflow.dev/generation"


@dataclass(frozen=True)
class Owner:
    """The identity of the custom resource an object belongs to."""

    kind: str
    name: str
    namespace: str
    uid: str

    @classmethod
    def of(cls, body: Any) -> Owner:
        meta = body["metadata"]
        return cls(body["kind"], meta["name"], meta["namespace"], meta["uid"])

    @property
    def qualified(self) -> str:
        return f"{self.namespace}/{self.name}"

    def reference(self) -> dict[str, Any]:
        return {
            "apiVersion": API_VERSION,
            "kind": self.kind,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }


def workers_name(queue: str) -> str:
    return f"{queue}-workers"


def selector_labels(queue: str) -> dict[str, str]:
    return {QUEUE_LABEL: queue, COMPONENT_LABEL: "worker"}


def labels(queue: str) -> dict[str, str]:
    return {
        **selector_labels(queue),
        "app.kubernetes.io/name": "taskflow-worker",
        "app.kubernetes.io/instance": queue,
        "app.kubernetes.io/part-of": "taskflow",
        "app.kubernetes.io/managed-by": MANAGED_BY,
    }


def selector(queue: str) -> str:
    return ",".join(f"{k}={v}" for k, v in selector_labels(queue).items())
