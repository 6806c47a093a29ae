"""The ``<queue>-workers`` Deployment of a TaskQueue."""

from __future__ import annotations

from typing import Any

from taskflow_operator.builders.common import (
    GENERATION,
    HEALTH_PORT,
    Owner,
    labels,
    selector_labels,
    workers_name,
)
from taskflow_operator.crd.taskqueue import TaskQueueSpec

REDIS_URL_KEY = "redisUrl"
DATABASE_URL_KEY = "databaseUrl"
WORKER_UID = 10001


def worker_command(owner: Owner, spec: TaskQueueSpec) -> list[str]:
    return [
        "taskflow",
        "worker",
        "--app",
        spec.app,
        "--queue",
        owner.name,
        "--namespace",
        owner.namespace,
        "--concurrency",
        str(spec.concurrency),
        "--health-port",
        str(HEALTH_PORT),
        "--drain-grace",
        str(spec.drain_grace_seconds),
    ]


def worker_env(spec: TaskQueueSpec) -> list[dict[str, Any]]:
    secret = spec.connection.secret_name

    def from_secret(var: str, key: str) -> dict[str, Any]:
        return {"name": var, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}

    env = [
        from_secret("TASKFLOW_REDIS_URL", REDIS_URL_KEY),
        from_secret("TASKFLOW_DATABASE_URL", DATABASE_URL_KEY),
    ]
    for var in spec.env:
        entry: dict[str, Any] = {"name": var.name}
        if var.value is not None:
            entry["value"] = var.value
        if var.value_from is not None:
            entry["valueFrom"] = dict(var.value_from)
        env.append(entry)
    return env


def _probe(path: str, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": "health"},
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    }


def worker_container(owner: Owner, spec: TaskQueueSpec) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "worker",
        "image": spec.image,
        "imagePullPolicy": spec.image_pull_policy.value,
        "command": worker_command(owner, spec),
        "env": worker_env(spec),
        "ports": [{"name": "health", "containerPort": HEALTH_PORT, "protocol": "TCP"}],
        "livenessProbe": _probe("/healthz", 10, 3),
        "readinessProbe": _probe("/readyz", 5, 1),
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    if spec.resources is not None:
        container["resources"] = spec.resources.model_dump(by_alias=True, exclude_none=True)
    return container


def pod_template(owner: Owner, spec: TaskQueueSpec) -> dict[str, Any]:
    template: dict[str, Any] = {
        "metadata": {"labels": labels(owner.name)},
        "spec": {
            "terminationGracePeriodSeconds": spec.termination_grace_period_seconds,
            "automountServiceAccountToken": spec.automount_service_account_token,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": WORKER_UID,
                "runAsGroup": WORKER_UID,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [worker_container(owner, spec)],
            "volumes": [{"name": "tmp", "emptyDir": {}}],
        },
    }
    # Always named (the API server's default is "default"), so dropping the field from a
    # TaskQueue rolls the pods back to the namespace's default account.
    template["spec"]["serviceAccountName"] = spec.service_account_name or "default"
    return template


def workers_deployment(
    owner: Owner, spec: TaskQueueSpec, replicas: int | None, generation: int | None = None
) -> dict[str, Any]:
    """The Deployment; ``replicas=None`` leaves the count to someone else (KEDA);
    ``generation`` is the TaskQueue's, recorded in an annotation."""
    deployment_spec: dict[str, Any] = {
        "selector": {"matchLabels": selector_labels(owner.name)},
        "revisionHistoryLimit": 3,
        "strategy": {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0},
        },
        "template": pod_template(owner, spec),
    }
    if replicas is not None:
        deployment_spec["replicas"] = replicas
    metadata: dict[str, Any] = {
        "name": workers_name(owner.name),
        "namespace": owner.namespace,
        "labels": labels(owner.name),
        "ownerReferences": [owner.reference()],
    }
    if generation is not None:
        metadata["annotations"] = {GENERATION: str(generation)}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata,
        "spec": deployment_spec,
    }
