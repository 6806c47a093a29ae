"""The DagRun CRD: the schema rejects what it can at apply time, kubectl shows progress."""

from __future__ import annotations

from typing import Any

from taskflow_operator import crdgen
from taskflow_operator.crd import DAGRUN


def walk(node: Any, path: str = "") -> Any:
    if isinstance(node, dict):
        yield path, node
        for key, value in node.get("properties", {}).items():
            yield from walk(value, f"{path}.{key}")
        if node.get("items", {}).get("type") == "object":  # a list's scalars share its text
            yield from walk(node["items"], f"{path}[]")


def test_dagrun_names_columns_and_schema() -> None:
    doc = crdgen.crd_document(DAGRUN)
    assert doc["metadata"]["name"] == "dagruns.taskflow.dev"
    assert doc["spec"]["names"]["shortNames"] == ["dr"]
    assert doc["spec"]["scope"] == "Namespaced"
    version = doc["spec"]["versions"][0]
    cols = [c["name"] for c in version["additionalPrinterColumns"] if "priority" not in c]
    assert cols == ["Phase", "Steps", "Succeeded", "Failed", "Age"]
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert set(spec["required"]) == {"queue", "steps"}
    steps = spec["properties"]["steps"]
    # Step names are unique (a list-map keyed by name), dependencies are a set.
    assert steps["x-kubernetes-list-map-keys"] == ["name"]
    step = steps["items"]["properties"]
    assert step["dependsOn"]["x-kubernetes-list-type"] == "set"
    assert spec["properties"]["failurePolicy"]["enum"] == ["fail_fast", "continue"]


def test_every_field_is_described_for_kubectl_explain() -> None:
    root = crdgen.crd_document(DAGRUN)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for section in ("spec", "status"):
        for path, node in walk(root["properties"][section], section):
            assert node.get("description"), f"{path} has no description"
