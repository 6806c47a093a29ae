from __future__ import annotations

from typing import Any

from taskflow_operator.builders.common import DELETION_COST, Owner
from taskflow_operator.builders.deployment import workers_deployment
from taskflow_operator.builders.drift import drifted
from taskflow_operator.builders.keda import scaled_object
from taskflow_operator.crd.taskqueue import TaskQueueSpec
from taskflow_operator.reconcile.podcost import PodLoad, annotations_to_write

OWNER = Owner("TaskQueue", "emails", "team-a", "uid-1")


def spec(**extra: Any) -> TaskQueueSpec:
    return TaskQueueSpec.model_validate(
        {
            "image": "registry.example/app:1",
            "app": "app.tasks:router",
            "concurrency": 8,
            "connection": {"secretName": "tf-conn"},
            "terminationGracePeriodSeconds": 40,
            **extra,
        }
    )


def test_deployment_runs_the_queue_worker_with_drain_fitting_the_grace_period() -> None:
    d = workers_deployment(OWNER, spec(), 2)
    assert d["metadata"]["name"] == "emails-workers"
    assert d["metadata"]["namespace"] == "team-a"
    assert d["spec"]["replicas"] == 2
    pod = d["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert c["command"] == [
        "taskflow", "worker", "--app", "app.tasks:router", "--queue", "emails",
        "--namespace", "team-a", "--concurrency", "8", "--health-port", "8081",
        "--drain-grace", "35",
    ]  # fmt: skip
    assert pod["terminationGracePeriodSeconds"] == 40
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}


def test_owner_reference_makes_the_queue_the_controller() -> None:
    (ref,) = workers_deployment(OWNER, spec(), 0)["metadata"]["ownerReferences"]
    assert ref == {
        "apiVersion": "taskflow.dev/v1alpha1",
        "kind": "TaskQueue",
        "name": "emails",
        "uid": "uid-1",
        "controller": True,
        "blockOwnerDeletion": True,
    }


def test_connection_comes_from_the_secret_and_extra_env_follows() -> None:
    s = spec(env=[{"name": "LOG", "value": "debug"}])
    env = workers_deployment(OWNER, s, 1)["spec"]["template"]["spec"]["containers"][0]["env"]
    assert env[0] == {
        "name": "TASKFLOW_REDIS_URL",
        "valueFrom": {"secretKeyRef": {"name": "tf-conn", "key": "redisUrl"}},
    }
    assert env[1]["valueFrom"]["secretKeyRef"] == {"name": "tf-conn", "key": "databaseUrl"}
    assert env[2] == {"name": "LOG", "value": "debug"}


def test_pod_security_is_restricted() -> None:
    pod = workers_deployment(OWNER, spec(), 1)["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = pod["containers"][0]["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["readOnlyRootFilesystem"] is True


def test_each_queue_can_run_its_workers_under_its_own_service_account() -> None:
    default = workers_deployment(OWNER, spec(), 1)["spec"]["template"]["spec"]
    assert default["serviceAccountName"] == "default"
    assert default["automountServiceAccountToken"] is False
    own = spec(serviceAccountName="billing-workers", automountServiceAccountToken=True)
    pod = workers_deployment(OWNER, own, 1)["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "billing-workers"
    assert pod["automountServiceAccountToken"] is True


def test_a_service_account_name_must_be_an_object_name() -> None:
    import pydantic
    import pytest

    with pytest.raises(pydantic.ValidationError, match=r"service_account_name|serviceAccountName"):
        spec(serviceAccountName="Billing Workers")


def test_keda_mode_leaves_replicas_out_and_emits_a_scaled_object() -> None:
    s = spec(autoscaling={"engine": "keda", "targetPerPod": 20}, replicas={"min": 0, "max": 7})
    assert "replicas" not in workers_deployment(OWNER, s, None)["spec"]
    so = scaled_object(OWNER, s, "http://op.tf.svc:8080/")
    assert so["spec"]["scaleTargetRef"] == {"name": "emails-workers"}
    assert (so["spec"]["minReplicaCount"], so["spec"]["maxReplicaCount"]) == (0, 7)
    (trigger,) = so["spec"]["triggers"]
    assert trigger["type"] == "metrics-api"
    assert trigger["metadata"]["url"] == "http://op.tf.svc:8080/v1/backlog/team-a/emails"
    assert trigger["metadata"]["targetValue"] == "20"


def test_drift_ignores_server_defaults_but_sees_edits() -> None:
    wanted = workers_deployment(OWNER, spec(resources={"limits": {"cpu": "500m"}}), None)["spec"]
    live: dict[str, Any] = {
        **wanted,
        "progressDeadlineSeconds": 600,
        "template": {
            **wanted["template"],
            "spec": {**wanted["template"]["spec"], "dnsPolicy": "ClusterFirst"},
        },
    }
    container = dict(live["template"]["spec"]["containers"][0])
    container["resources"] = {"limits": {"cpu": "0.5"}}
    live["template"]["spec"]["containers"] = [container]
    assert drifted(wanted, live) == []
    container["image"] = "evil:latest"
    assert drifted(wanted, live) == ["template.spec.containers[0].image"]


def test_deletion_cost_follows_in_flight_and_writes_only_changes() -> None:
    pods = [
        {"metadata": {"name": "a", "annotations": {DELETION_COST: "3"}}},
        {"metadata": {"name": "b"}},
        {"metadata": {"name": "c"}},
    ]
    loads = [PodLoad("a", 3), PodLoad("b", 0), PodLoad("c", None)]
    assert annotations_to_write(pods, loads) == {"b": "0", "c": "0"}


def test_deployment_records_the_generation_it_was_written_from() -> None:
    from taskflow_operator.builders.common import GENERATION

    assert workers_deployment(OWNER, spec(), 1, 7)["metadata"]["annotations"] == {GENERATION: "7"}
    assert "annotations" not in workers_deployment(OWNER, spec(), 1)["metadata"]
