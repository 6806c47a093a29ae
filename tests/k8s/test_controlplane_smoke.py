from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any, cast

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.k8s.controlplane import ControlPlane, eventually, is_kwok_node, ready_node_names

TIMEOUT = 60.0


def widget_crd(group: str) -> dict[str, Any]:
    schema = {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "required": ["replicas"],
                "properties": {"replicas": {"type": "integer", "minimum": 1}},
            }
        },
        "required": ["spec"],
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": schema},
                }
            ],
        },
    }


def is_established(api: client.ApiextensionsV1Api, name: str) -> bool:
    crd = api.read_custom_resource_definition(name)
    conditions = (crd.status and crd.status.conditions) or []
    return any(c.type == "Established" and c.status == "True" for c in conditions)


@pytest.fixture
def widget_group(k8s_api: client.ApiClient) -> Iterator[str]:
    api = client.ApiextensionsV1Api(k8s_api)
    group = f"g{secrets.token_hex(4)}.smoke.taskflow.dev"
    body: Any = widget_crd(group)
    api.create_custom_resource_definition(body)
    name = f"widgets.{group}"
    eventually(lambda: is_established(api, name), TIMEOUT, "CRD established")
    yield group
    api.delete_custom_resource_definition(name)


def widget(group: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": f"{group}/v1", "kind": "Widget", "metadata": {"name": name}, "spec": spec}


def create_widget(
    objects: client.CustomObjectsApi, group: str, namespace: str, body: dict[str, Any]
) -> dict[str, Any]:
    created = objects.create_namespaced_custom_object(group, "v1", namespace, "widgets", body)
    return cast(dict[str, Any], created)


def rejection(
    objects: client.CustomObjectsApi, group: str, namespace: str, body: dict[str, Any]
) -> ApiException:
    with pytest.raises(ApiException) as caught:
        create_widget(objects, group, namespace, body)
    return caught.value


def test_crd_schema_is_enforced_by_the_api_server(
    k8s_api: client.ApiClient, k8s_namespace: str, widget_group: str
) -> None:
    objects = client.CustomObjectsApi(k8s_api)

    def attempt(name: str, spec: dict[str, Any]) -> ApiException:
        return rejection(objects, widget_group, k8s_namespace, widget(widget_group, name, spec))

    def create_valid() -> dict[str, Any] | None:
        body = widget(widget_group, "ok", {"replicas": 2})
        try:
            return create_widget(objects, widget_group, k8s_namespace, body)
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    created = eventually(create_valid, TIMEOUT, "valid Widget accepted")
    assert created["spec"]["replicas"] == 2

    too_small = attempt("zero", {"replicas": 0})
    assert too_small.status == 422
    assert "spec.replicas" in str(too_small.body)

    missing = attempt("empty", {})
    assert missing.status == 422
    assert "spec.replicas" in str(missing.body)
    assert "Required value" in str(missing.body)


def deployment(name: str, replicas: int) -> client.V1Deployment:
    labels = {"app": name}
    container = client.V1Container(name="main", image="registry.k8s.io/pause:3.10")
    return client.V1Deployment(
        metadata=client.V1ObjectMeta(name=name, labels=labels),
        spec=client.V1DeploymentSpec(
            replicas=replicas,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(containers=[container]),
            ),
        ),
    )


def running_node_of(pod: client.V1Pod) -> str | None:
    if pod.status is None or pod.status.phase != "Running" or pod.spec is None:
        return None
    return pod.spec.node_name


def test_deployment_pods_run_on_nodes(
    k8s_api: client.ApiClient, k8s_namespace: str, k8s_control_plane: ControlPlane | None
) -> None:
    apps, core = client.AppsV1Api(k8s_api), client.CoreV1Api(k8s_api)
    apps.create_namespaced_deployment(k8s_namespace, deployment("smoke", 2))

    def running_on() -> list[str] | None:
        pods = core.list_namespaced_pod(k8s_namespace, label_selector="app=smoke").items
        nodes = [node for node in map(running_node_of, pods) if node]
        return nodes if len(nodes) == 2 else None

    pod_nodes = eventually(running_on, TIMEOUT, "2 pods of the Deployment Running")
    nodes = {node.metadata.name: node for node in core.list_node().items if node.metadata}
    assert set(pod_nodes) <= ready_node_names(list(nodes.values()))
    if k8s_control_plane is not None:
        assert all(is_kwok_node(nodes[name]) for name in pod_nodes)

    def available() -> bool:
        status = apps.read_namespaced_deployment_status("smoke", k8s_namespace).status
        return status is not None and status.available_replicas == 2

    eventually(available, TIMEOUT, "Deployment reports 2 available replicas")


def config_map(name: str, owner: client.V1ConfigMap | None = None) -> client.V1ConfigMap:
    references = None
    if owner is not None:
        meta = owner.metadata
        assert meta is not None and meta.name and meta.uid
        reference = client.V1OwnerReference(
            api_version="v1", kind="ConfigMap", name=meta.name, uid=meta.uid
        )
        references = [reference]
    metadata = client.V1ObjectMeta(name=name, owner_references=references)
    return client.V1ConfigMap(metadata=metadata, data={"role": name})


def test_garbage_collector_deletes_owned_objects(
    k8s_api: client.ApiClient, k8s_namespace: str
) -> None:
    core = client.CoreV1Api(k8s_api)
    owner = core.create_namespaced_config_map(k8s_namespace, config_map("owner"))
    core.create_namespaced_config_map(k8s_namespace, config_map("owned", owner=owner))
    core.delete_namespaced_config_map("owner", k8s_namespace)

    def owned_gone() -> bool:
        try:
            core.read_namespaced_config_map("owned", k8s_namespace)
        except ApiException as error:
            if error.status == 404:
                return True
            raise
        return False

    eventually(owned_gone, TIMEOUT, "owned ConfigMap garbage-collected")
