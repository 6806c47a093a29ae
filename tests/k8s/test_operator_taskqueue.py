"""TaskQueue on a real control plane: Deployment, validation, drift, garbage collection."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from taskflow.config import Settings
from taskflow_operator.settings import OperatorConfig
from tests.k8s.controlplane import eventually
from tests.k8s.operator_support import Objects, install_crds, operator, taskqueue

TIMEOUT = 30.0


@pytest.fixture(scope="module")
def crds(k8s_api: client.ApiClient) -> None:
    install_crds(k8s_api)


@pytest.fixture
def engine_env(operator_settings: Settings) -> None:
    """The operator reads its Redis and PostgreSQL from the environment."""


@pytest.fixture
def running_operator(
    crds: None, engine_env: None, k8s_kubeconfig: Any, k8s_namespace: str
) -> Iterator[None]:
    config = OperatorConfig(
        kubeconfig=k8s_kubeconfig,
        namespaces=(k8s_namespace,),
        http_port=0,
        liveness_endpoint="",
        standalone=True,
        housekeeping=False,
    )
    with operator(config):
        yield


def rejected(objects: Objects, body: dict[str, Any]) -> str:
    with pytest.raises(ApiException) as caught:
        objects.create("taskqueues", body)
    assert caught.value.status == 422
    return str(caught.value.body)


def test_invalid_specs_are_rejected_naming_the_field(
    crds: None, k8s_api: client.ApiClient, k8s_namespace: str
) -> None:
    objects = Objects(k8s_api, k8s_namespace)
    msg = rejected(objects, taskqueue("a", replicas={"min": 5, "max": 2}))
    assert "spec.replicas" in msg and "replicas.min must not exceed max" in msg
    msg = rejected(objects, taskqueue("b", concurrency=0))
    assert "spec.concurrency" in msg
    msg = rejected(objects, taskqueue("c", autoscaling={"engine": "hpa"}))
    assert "spec.autoscaling.engine" in msg and "keda" in msg
    msg = rejected(objects, taskqueue("d", app="no-colon"))
    assert "spec.app" in msg


def test_what_the_api_server_would_refuse_in_the_deployment_is_refused_at_apply(
    crds: None, k8s_api: client.ApiClient, k8s_namespace: str
) -> None:
    objects = Objects(k8s_api, k8s_namespace)
    msg = rejected(objects, taskqueue("q", resources={"requests": {"cpu": "1 core"}}))
    assert "spec.resources.requests.cpu" in msg
    msg = rejected(objects, taskqueue("n" * 56))
    assert "at most 55 characters" in msg
    assert objects.create("taskqueues", taskqueue("n" * 55))["metadata"]["name"] == "n" * 55
    msg = rejected(objects, taskqueue("e1", env=[{"name": "1BAD", "value": "x"}]))
    assert "spec.env[0].name" in msg
    msg = rejected(
        objects,
        taskqueue("e2", env=[{"name": "A", "value": "x", "valueFrom": {"fieldRef": {}}}]),
    )
    assert "give value or valueFrom, not both" in msg
    msg = rejected(objects, taskqueue("e3", env=[{"name": "TASKFLOW_REDIS_URL", "value": "x"}]))
    assert "come from connection.secretName" in msg
    ok = taskqueue("ok", resources={"requests": {"cpu": "100m", "memory": 268435456}})
    assert objects.create("taskqueues", ok)["spec"]["resources"]["requests"]["cpu"] == "100m"


def test_taskqueue_gets_an_owned_worker_deployment_that_is_repaired_and_collected(
    running_operator: None, k8s_api: client.ApiClient, k8s_namespace: str
) -> None:
    objects = Objects(k8s_api, k8s_namespace)
    created = objects.create(
        "taskqueues", taskqueue("emails", concurrency=4, replicas={"min": 1, "max": 3})
    )
    dep = eventually(lambda: objects.deployment("emails-workers"), TIMEOUT, "deployment created")
    (ref,) = dep.metadata.owner_references
    assert (ref.kind, ref.name, ref.uid, ref.controller) == (
        "TaskQueue",
        "emails",
        created["metadata"]["uid"],
        True,
    )
    assert dep.spec.replicas == 1
    (c,) = dep.spec.template.spec.containers
    assert c.command[:2] == ["taskflow", "worker"]
    assert c.command[c.command.index("--namespace") + 1] == k8s_namespace
    assert c.command[c.command.index("--queue") + 1] == "emails"
    assert c.command[c.command.index("--concurrency") + 1] == "4"
    assert c.liveness_probe.http_get.path == "/healthz"
    assert c.readiness_probe.http_get.path == "/readyz"
    assert dep.spec.template.spec.security_context.run_as_non_root is True

    # Status and conditions appear.
    eventually(lambda: objects.condition("taskqueues", "emails", "Degraded"), TIMEOUT, "conditions")
    degraded = objects.condition("taskqueues", "emails", "Degraded")
    assert degraded is not None and degraded["status"] == "False"

    # A spec change rolls out; a hand edit is repaired.
    objects.patch("taskqueues", "emails", {"spec": {"concurrency": 6}})

    def concurrency() -> str | None:
        d = objects.deployment("emails-workers")
        cmd = d.spec.template.spec.containers[0].command if d else []
        return cmd[cmd.index("--concurrency") + 1] if "--concurrency" in cmd else None

    eventually(lambda: concurrency() == "6", TIMEOUT, "spec change rolled out")
    objects.apps.patch_namespaced_deployment(
        "emails-workers",
        k8s_namespace,
        {"spec": {"template": {"spec": {"containers": [{"name": "worker", "image": "evil:1"}]}}}},
    )

    def image() -> str:
        d = objects.deployment("emails-workers")
        return d.spec.template.spec.containers[0].image if d else ""

    eventually(
        lambda: image() == "registry.example/taskflow-worker:test", TIMEOUT, "drift repaired"
    )

    # Deleting the queue garbage-collects its Deployment.
    objects.delete("taskqueues", "emails")
    eventually(lambda: objects.deployment("emails-workers") is None, 60.0, "deployment collected")


def test_kubectl_explain_describes_the_fields(crds: None, k8s_kubeconfig: Any) -> None:
    from tests.k8s.test_operator_scaling import kubectl

    eventually(
        lambda: "Bounds of the worker Deployment" in kubectl(k8s_kubeconfig, "explain", "tq.spec"),
        TIMEOUT,
        "the schema published",
    )
    spec = kubectl(k8s_kubeconfig, "explain", "taskqueue.spec.replicas.min")
    assert "Fewest pods (0: scale to zero)" in spec, spec
    status = kubectl(k8s_kubeconfig, "explain", "task.status.conditions")
    assert "Submitted (the engine accepted it)" in status, status
